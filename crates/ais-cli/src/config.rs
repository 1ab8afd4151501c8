//! `ais config cluster|node|reset|show` and `ais show config`: the cluster's
//! and a node's configuration, AIStore's verbs and forms (`KEY=VALUE`
//! pairs, or `KEY VALUE`; a section name or key prefix to show part).

use crate::fmt::table;
use crate::props::flatten;
use ais_client::Client;
use anyhow::{bail, Result};
use clap::Subcommand;
use serde_json::Value;

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Show or change the cluster's configuration:
    /// `ais config cluster` (all), `ais config cluster lru` (a section),
    /// `ais config cluster timeout.max_keepalive=8s space.highwm=85`,
    /// `ais config cluster rebalance.enabled false`.
    Cluster {
        /// KEY=VALUE pairs to set, `KEY VALUE`, or a section / key prefix to show.
        args: Vec<String>,
        #[arg(long, short = 'j')]
        json: bool,
    },
    /// Show or change one node's configuration (its own values override the
    /// cluster's): `ais config node NODE_ID [inherited|local] [SECTION]`,
    /// `ais config node NODE_ID lru.enabled=false [--transient]`.
    Node {
        node_id: String,
        /// KEY=VALUE pairs to set, `KEY VALUE`, or [inherited|local] [SECTION].
        args: Vec<String>,
        #[arg(long, short = 'j')]
        json: bool,
        /// Change the running node only (gone after its restart).
        #[arg(long)]
        transient: bool,
    },
    /// Reset the cluster's configuration to the defaults, or a node's to the
    /// cluster's: `ais config reset [NODE_ID]`.
    Reset { node_id: Option<String> },
    /// Show a configuration: `ais config show cluster [SECTION]`, `ais config show NODE_ID [SECTION]`.
    Show {
        /// `cluster` or a node id.
        which: String,
        section: Option<String>,
        #[arg(long, short = 'j')]
        json: bool,
    },
}

/// What the arguments ask for: pairs to set, or a filter to show.
enum Ask {
    Set(Vec<(String, String)>),
    Show(Option<String>),
}

fn parse_args(args: &[String]) -> Result<Ask> {
    if args.iter().any(|a| a.contains('=')) {
        let mut pairs = Vec::new();
        for a in args {
            match a.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    pairs.push((k.trim().to_string(), v.trim().to_string()))
                }
                _ => bail!("\"{a}\": expected KEY=VALUE (e.g. timeout.max_keepalive=8s)"),
            }
        }
        return Ok(Ask::Set(pairs));
    }
    match args {
        [] => Ok(Ask::Show(None)),
        [section] => Ok(Ask::Show(Some(section.clone()))),
        [key, value] if key.contains('.') => Ok(Ask::Set(vec![(key.clone(), value.clone())])),
        _ => bail!(
            "expected KEY=VALUE pairs, KEY VALUE, or one section to show (got {})",
            args.join(" ")
        ),
    }
}

/// Prints `cfg` (all, or the keys under `section`) as a table or JSON.
fn print(cfg: &Value, section: Option<&str>, json: bool) -> Result<()> {
    let mut rows = Vec::new();
    flatten("", cfg, &mut rows);
    if let Some(s) = section {
        rows.retain(|(k, _)| k.starts_with(s));
        if rows.is_empty() {
            bail!("no configuration section or key \"{s}\"");
        }
    }
    if json {
        let sub = match section.and_then(|s| cfg.pointer(&format!("/{}", s.replace('.', "/")))) {
            Some(v) => v.clone(),
            None if section.is_none() => cfg.clone(),
            None => {
                let m: serde_json::Map<String, Value> = rows
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect();
                Value::Object(m)
            }
        };
        println!("{}", serde_json::to_string_pretty(&sub)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = rows.into_iter().map(|(k, v)| vec![k, v]).collect();
    table(&["PROPERTY", "VALUE"], &rows);
    Ok(())
}

/// The keys where `node` differs from `cluster` (a node's own values).
fn local_only(node: &Value, cluster: &Value) -> Value {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    flatten("", node, &mut a);
    flatten("", cluster, &mut b);
    let b: std::collections::BTreeMap<_, _> = b.into_iter().collect();
    let m: serde_json::Map<String, Value> = a
        .into_iter()
        .filter(|(k, v)| k != "config_version" && b.get(k) != Some(v))
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    Value::Object(m)
}

pub async fn run(client: &Client, cmd: ConfigCmd) -> Result<()> {
    match cmd {
        ConfigCmd::Cluster { args, json } => match parse_args(&args)? {
            Ask::Set(pairs) => {
                client.set_cluster_config(&pairs).await?;
                println!("Cluster config updated");
                Ok(())
            }
            Ask::Show(section) => print(&client.cluster_config().await?, section.as_deref(), json),
        },
        ConfigCmd::Node {
            node_id,
            args,
            json,
            transient,
        } => {
            let (view, rest) = match args.first().map(String::as_str) {
                Some(v @ ("inherited" | "local")) => (Some(v.to_string()), &args[1..]),
                _ => (None, &args[..]),
            };
            match parse_args(rest)? {
                Ask::Set(pairs) => {
                    if view.is_some() {
                        bail!(
                            "inherited/local select what to show; give KEY=VALUE pairs without it"
                        );
                    }
                    client.set_node_config(&node_id, &pairs, transient).await?;
                    println!(
                        "Node \"{node_id}\" config updated{}",
                        if transient { " (transient)" } else { "" }
                    );
                    Ok(())
                }
                Ask::Show(section) => {
                    let node = client.node_config(&node_id).await?;
                    let cfg = match view.as_deref() {
                        Some("inherited") => client.cluster_config().await?,
                        Some(_) => local_only(&node, &client.cluster_config().await?),
                        None => node,
                    };
                    print(&cfg, section.as_deref(), json)
                }
            }
        }
        ConfigCmd::Reset { node_id } => {
            client.reset_config(node_id.as_deref()).await?;
            match node_id {
                Some(id) => println!("Node \"{id}\" config reset to the cluster's"),
                None => println!("Cluster config reset to the defaults"),
            }
            Ok(())
        }
        ConfigCmd::Show {
            which,
            section,
            json,
        } => show(client, &which, section.as_deref(), json).await,
    }
}

/// `ais show config cluster|NODE_ID [SECTION]`.
pub async fn show(client: &Client, which: &str, section: Option<&str>, json: bool) -> Result<()> {
    let cfg = match which {
        "cluster" => client.cluster_config().await?,
        node => client.node_config(node).await?,
    };
    print(&cfg, section, json)
}
