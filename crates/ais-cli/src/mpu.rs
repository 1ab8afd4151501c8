//! `ais mpu` / `ais object mpu` (`multipart-upload`): AIStore's native
//! multipart upload from the command line.

use crate::objects::parse_object;
use ais_client::Client;
use anyhow::{bail, Result};
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum MpuCmd {
    /// Start an upload: `ais mpu create ais://B/OBJ` prints its UPLOAD_ID.
    Create {
        object: String,
        #[arg(long)]
        verbose: bool,
    },
    /// Upload a part (any order, in parallel):
    /// `ais mpu put-part ais://B/OBJ UPLOAD_ID 2 /path/part2.dat`.
    PutPart {
        object: String,
        #[arg(long = "upload-id")]
        upload_id_flag: Option<String>,
        #[arg(long = "part-number")]
        part_number_flag: Option<u32>,
        /// UPLOAD_ID PART_NUMBER FILE (or FILE with the flags).
        args: Vec<String>,
        #[arg(long)]
        verbose: bool,
    },
    /// Assemble the object from the listed parts:
    /// `ais mpu complete ais://B/OBJ UPLOAD_ID 1,2,3`.
    Complete {
        object: String,
        #[arg(long = "upload-id")]
        upload_id_flag: Option<String>,
        #[arg(long = "part-numbers")]
        part_numbers_flag: Option<String>,
        /// UPLOAD_ID PART_NUMBERS (or nothing with the flags).
        args: Vec<String>,
        #[arg(long)]
        verbose: bool,
    },
    /// Drop an upload and its parts: `ais mpu abort ais://B/OBJ UPLOAD_ID`.
    Abort {
        object: String,
        #[arg(long = "upload-id")]
        upload_id_flag: Option<String>,
        upload_id: Option<String>,
        #[arg(long)]
        verbose: bool,
    },
}

fn numbers(s: &str) -> Result<Vec<u32>> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<u32>()
                .map_err(|_| anyhow::anyhow!("invalid part number \"{p}\" (expected e.g. 1,2,3)"))
        })
        .collect()
}

pub async fn run(client: &Client, cmd: MpuCmd) -> Result<()> {
    match cmd {
        MpuCmd::Create { object, verbose } => {
            let (bck, obj) = parse_object(&object)?;
            let id = client.mpu_create(&bck.name, &obj).await?;
            if verbose {
                println!("Created multipart upload for {}/{obj}", bck.cname());
            }
            println!("Upload ID: {id}");
            Ok(())
        }
        MpuCmd::PutPart {
            object,
            upload_id_flag,
            part_number_flag,
            args,
            verbose,
        } => {
            let (bck, obj) = parse_object(&object)?;
            let (id, n, file) = match (upload_id_flag, part_number_flag, args.as_slice()) {
                (Some(id), Some(n), [file]) => (id, n, file.clone()),
                (None, None, [id, n, file]) => (
                    id.clone(),
                    n.parse()
                        .map_err(|_| anyhow::anyhow!("invalid part number \"{n}\""))?,
                    file.clone(),
                ),
                _ => bail!("usage: ais mpu put-part BUCKET/OBJECT UPLOAD_ID PART_NUMBER FILE"),
            };
            let path = std::path::Path::new(&file);
            if verbose {
                let len = std::fs::metadata(path)?.len();
                println!(
                    "Uploading part {n} from {file} ({})...",
                    crate::fmt::size_iec(len)
                );
            }
            client.mpu_put_part(&bck.name, &obj, &id, n, path).await?;
            println!(
                "Uploaded part {n} for {}/{obj} (upload ID: {id})",
                bck.cname()
            );
            Ok(())
        }
        MpuCmd::Complete {
            object,
            upload_id_flag,
            part_numbers_flag,
            args,
            verbose,
        } => {
            let (bck, obj) = parse_object(&object)?;
            let (id, parts) = match (upload_id_flag, part_numbers_flag, args.as_slice()) {
                (Some(id), Some(p), []) => (id, numbers(&p)?),
                (None, None, [id, p]) => (id.clone(), numbers(p)?),
                _ => bail!("usage: ais mpu complete BUCKET/OBJECT UPLOAD_ID 1,2,3"),
            };
            if parts.is_empty() {
                bail!("name the parts to assemble, e.g. 1,2,3");
            }
            if verbose {
                println!(
                    "Completing multipart upload for {}/{obj} with {} parts...",
                    bck.cname(),
                    parts.len()
                );
            }
            client.mpu_complete(&bck.name, &obj, &id, &parts).await?;
            println!(
                "Successfully completed multipart upload for {}/{obj}",
                bck.cname()
            );
            Ok(())
        }
        MpuCmd::Abort {
            object,
            upload_id_flag,
            upload_id,
            verbose,
        } => {
            let (bck, obj) = parse_object(&object)?;
            let Some(id) = upload_id_flag.or(upload_id) else {
                bail!("usage: ais mpu abort BUCKET/OBJECT UPLOAD_ID");
            };
            if verbose {
                println!("Aborting multipart upload {id}...");
            }
            client.mpu_abort(&bck.name, &obj, &id).await?;
            println!(
                "Aborted multipart upload for {}/{obj} (upload ID: {id})",
                bck.cname()
            );
            Ok(())
        }
    }
}
