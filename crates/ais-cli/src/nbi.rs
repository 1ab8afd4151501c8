//! `ais nbi create|show|rm` (and `ais show nbi`): native bucket
//! inventories of remote buckets, AIStore's commands and flags. Listing
//! from one is `ais ls s3://B --inventory [--inv-name N]` (`objects.rs`).

use crate::objects::parse_bucket;
use ais_client::Client;
use ais_core::api::{CreateNbiMsg, NbiInfo};
use clap::{Args, Subcommand};
use std::collections::BTreeMap;

#[derive(Subcommand, Debug)]
pub enum NbiCmd {
    /// Create a bucket inventory (a snapshot of a remote bucket's names) for
    /// fast listing: `ais nbi create s3://B [--inv-name N] [--prefix P]`;
    /// then `ais ls s3://B --inventory`.
    Create(CreateArgs),
    /// Show inventories: all (no bucket), a provider's (`s3:`), a bucket's.
    Show(ShowArgs),
    /// Remove a bucket's inventory (`--inv-name`: that one; else all).
    Rm {
        bucket: String,
        /// The inventory to remove.
        #[arg(long)]
        inv_name: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The remote bucket (s3://BUCKET).
    bucket: String,
    /// Inventory name (unique per bucket; default: generated).
    #[arg(long)]
    inv_name: Option<String>,
    /// Only objects whose names start with this prefix.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Keep names only.
    #[arg(long)]
    name_only: bool,
    /// Keep every property the listing has.
    #[arg(long)]
    all: bool,
    /// Names per inventory chunk (advanced; 2..=640000, default 20000).
    #[arg(long, default_value_t = 0)]
    names_per_chunk: i64,
    /// Remove the bucket's existing inventory first (one per bucket).
    #[arg(long)]
    force: bool,
    /// Wait for the job to finish.
    #[arg(long)]
    wait: bool,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// A bucket (s3://B), a provider (s3:), or nothing for all.
    bucket: Option<String>,
    /// Only this inventory.
    #[arg(long)]
    inv_name: Option<String>,
    /// More columns: object, chunks, targets, map version.
    #[arg(long, short = 'v')]
    verbose: bool,
    #[arg(long)]
    json: bool,
}

pub async fn run(client: &Client, cmd: NbiCmd) -> anyhow::Result<()> {
    match cmd {
        NbiCmd::Create(a) => create(client, a).await,
        NbiCmd::Show(a) => show(client, a).await,
        NbiCmd::Rm { bucket, inv_name } => {
            let bck = parse_bucket(&bucket)?;
            let name = inv_name.unwrap_or_default();
            client.destroy_inventory(&bck.name, &name).await?;
            if name.is_empty() {
                println!("Removed the inventories of {}", bck.cname());
            } else {
                println!("Removed inventory \"{name}\" of {}", bck.cname());
            }
            Ok(())
        }
    }
}

async fn create(client: &Client, a: CreateArgs) -> anyhow::Result<()> {
    let bck = parse_bucket(&a.bucket)?;
    let props = if a.name_only {
        "name"
    } else if a.all {
        "name,size,version,checksum,atime,cached"
    } else {
        ""
    };
    let msg = CreateNbiMsg {
        name: a.inv_name.unwrap_or_default(),
        prefix: a.prefix,
        props: props.into(),
        names_per_chunk: a.names_per_chunk,
        force: a.force,
        ..Default::default()
    };
    let id = client.create_inventory(&bck.name, &msg).await?;
    println!(
        "Creating the inventory of {}: create-inventory[{id}]",
        bck.cname()
    );
    crate::jobs::follow(client, &id, a.wait).await
}

/// Nanoseconds since the epoch as an RFC 3339 UTC time (to the second).
fn when(ns: i64) -> String {
    if ns <= 0 {
        return "-".into();
    }
    crate::views::rfc3339((ns / 1_000_000_000) as u64)
}

/// A column of `ais nbi show`: header, in the compact view, cell.
type Column<'a> = (&'static str, bool, &'a dyn Fn(&NbiInfo) -> String);

async fn show(client: &Client, a: ShowArgs) -> anyhow::Result<()> {
    // The buckets to ask: one, a provider's remote buckets, or every
    // remote bucket.
    let buckets: Vec<ais_core::Bck> = match a.bucket.as_deref() {
        Some(b) if !b.trim_end_matches('/').ends_with(':') => vec![parse_bucket(b)?],
        other => {
            let provider = other.map(|p| {
                let p = p.trim_end_matches('/').trim_end_matches(':');
                if p == "s3" {
                    "aws".to_string()
                } else {
                    p.to_string()
                }
            });
            // Inventories are of remote buckets: s3:// (aws) here.
            match provider.as_deref() {
                None | Some("aws") => client.list_buckets_of("aws").await?,
                Some(p) => anyhow::bail!(
                    "\"{p}:\": inventories are of remote buckets; this cluster's are s3://"
                ),
            }
        }
    };
    let name = a.inv_name.unwrap_or_default();
    let mut all: BTreeMap<String, NbiInfo> = BTreeMap::new();
    for b in &buckets {
        all.extend(client.show_inventory(&b.name, &name).await?);
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    if all.is_empty() {
        println!("No bucket inventories");
        return Ok(());
    }
    let cname = |i: &NbiInfo| {
        buckets
            .iter()
            .find(|b| b.name == i.bucket)
            .map(|b| b.cname())
            .unwrap_or_else(|| i.bucket.clone())
    };
    let prefix = |i: &NbiInfo| {
        if i.prefix.is_empty() {
            "-".to_string()
        } else {
            i.prefix.clone()
        }
    };
    // Every column, each marked whether the compact view shows it.
    let cols: [Column; 11] = [
        ("BUCKET", true, &cname),
        ("NAME", true, &|i| i.name.clone()),
        ("OBJECT", false, &|i| i.obj_name.clone()),
        ("SIZE", true, &|i| crate::fmt::size_iec(i.size)),
        ("OBJECTS", true, &|i| i.ntotal.to_string()),
        ("CHUNKS", false, &|i| i.chunks.to_string()),
        ("TARGETS", false, &|i| i.nat.to_string()),
        ("SMAP", false, &|i| format!("v{}", i.smap_ver)),
        ("STARTED", true, &|i| when(i.started)),
        ("FINISHED", true, &|i| when(i.finished)),
        ("PREFIX", true, &prefix),
    ];
    let shown: Vec<_> = cols.iter().filter(|c| a.verbose || c.1).collect();
    let header: Vec<&str> = shown.iter().map(|c| c.0).collect();
    let rows: Vec<Vec<String>> = all
        .values()
        .map(|i| shown.iter().map(|c| (c.2)(i)).collect())
        .collect();
    crate::fmt::table(&header, &rows);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_utc_dates() {
        assert_eq!(super::when(0), "-");
        assert_eq!(super::when(1_000_000_000), "1970-01-01T00:00:01Z");
        // 2026-03-18T02:15:07Z
        assert_eq!(
            super::when(1_773_800_107_000_000_000),
            "2026-03-18T02:15:07Z"
        );
        // A leap day.
        assert_eq!(
            super::when(1_709_210_096_000_000_000),
            "2024-02-29T12:34:56Z"
        );
    }
}
