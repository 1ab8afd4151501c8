//! `ais download` / `ais start download` (AIStore's downloader): HTTP(S)
//! links into a bucket, one link, a `{a..b}` range, or a list from a file;
//! progress with `ais show job` / `ais wait`.

use ais_client::Client;
use anyhow::{bail, Context, Result};
use serde_json::json;

#[derive(clap::Args, Debug)]
pub struct DownloadArgs {
    /// A link, or a range of links ("http://h/d/shard-{000..099}.tar").
    pub src: String,
    /// ais://BUCKET[/OBJECT_NAME] (one link) or ais://BUCKET[/SUBDIR/].
    pub dst: String,
    /// A description for the job.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Timeout per link (e.g. 30s, 5m).
    #[arg(long, default_value = "")]
    pub timeout: String,
    /// Links fetched at once per target (1..=64).
    #[arg(long, default_value_t = 0)]
    pub limit_connections: i64,
    /// A file of links, one per line (a multi download; SRC is ignored).
    #[arg(long)]
    pub object_list: Option<String>,
    /// Wait for the job.
    #[arg(long)]
    pub wait: bool,
}

pub async fn start(client: &Client, a: DownloadArgs) -> Result<()> {
    let (bck, obj) = ais_core::Bck::parse_uri(&a.dst).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut body = json!({
        "bucket": {"name": bck.name, "provider": bck.provider},
        "description": a.description,
        "timeout": a.timeout,
    });
    if a.limit_connections > 0 {
        body["limits"] = json!({"connections": a.limit_connections});
    }
    let subdir = if obj.is_empty() || a.dst.ends_with('/') {
        if obj.is_empty() || obj.ends_with('/') {
            obj.clone()
        } else {
            format!("{obj}/")
        }
    } else {
        String::new()
    };
    if let Some(f) = &a.object_list {
        let text = std::fs::read_to_string(f).with_context(|| format!("read {f}"))?;
        let links: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        body["type"] = json!("multi");
        body["objects"] = json!(links);
    } else if a.src.contains('{') {
        body["type"] = json!("range");
        body["template"] = json!(a.src);
        body["subdir"] = json!(subdir);
    } else {
        body["type"] = json!("single");
        body["link"] = json!(a.src);
        if !obj.is_empty() && subdir.is_empty() {
            body["object_name"] = json!(obj);
        } else if !subdir.is_empty() {
            let base = a
                .src
                .split(['?', '#'])
                .next()
                .and_then(|u| u.rsplit('/').next())
                .filter(|b| !b.is_empty());
            let Some(base) = base else {
                bail!(
                    "{} ends with no file name: name the object (ais://B/NAME)",
                    a.src
                );
            };
            body["object_name"] = json!(format!("{subdir}{base}"));
        }
    }
    let id = client.download_start(&body).await?;
    println!("{id}");
    if a.wait {
        crate::jobs::wait(client, &id, None).await
    } else {
        println!("To monitor the progress, run 'ais show job {id}' or 'ais wait {id}'");
        Ok(())
    }
}
