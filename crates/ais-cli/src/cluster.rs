//! `ais cluster add-remove-nodes ...` (node lifecycle), `ais show rebalance`,
//! and `ais storage mountpath ...` (a target's disks).

use crate::fmt::{size_iec, table};
use ais_client::Client;
use ais_core::api::RmNodeMsg;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};

#[derive(Subcommand, Debug)]
pub enum ClusterCmd {
    /// Put targets in or out of maintenance, decommission or shut nodes down
    /// (a proxy: decommission takes it out of the control plane for good).
    #[command(name = "add-remove-nodes")]
    AddRemoveNodes {
        #[command(subcommand)]
        cmd: NodeCmd,
    },
    /// Start a global rebalance now (`ais cluster rebalance`), show the
    /// newest one (`... show`), or stop it (`... stop`).
    Rebalance {
        #[command(subcommand)]
        cmd: Option<RebalanceCmd>,
    },
    /// The cluster, its throughput and its jobs at a glance (as `ais show dashboard`).
    Dashboard,
    /// The cluster map (as `ais show cluster`).
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Save every node's log archive (one .tar.gz per node) in OUT_DIR
    /// (default: the system's temporary directory).
    DownloadLogs {
        out_dir: Option<String>,
        /// info (every line), warning or error.
        #[arg(long, default_value = "info")]
        severity: String,
    },
    /// Reset every node's request counters (`--errors-only`: only the
    /// error counts), or one node's.
    ResetStats {
        node_id: Option<String>,
        #[arg(long)]
        errors_only: bool,
    },
    /// Make another proxy the primary (an election it is set up to win;
    /// no metadata change is made meanwhile).
    #[command(name = "set-primary")]
    SetPrimary {
        /// The proxy's node id (`ais show cluster proxy`).
        node_id: String,
    },
    /// Shut the whole cluster down (every target, then the proxy).
    Shutdown {
        /// Do it (there is no prompt).
        #[arg(short = 'y', long)]
        yes: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum RebalanceCmd {
    /// Start a global rebalance now.
    Start,
    /// The newest rebalance, per target.
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Stop the running rebalance.
    Stop,
}

#[derive(Args, Debug)]
pub struct NodeArgs {
    /// The node's id (see `ais show cluster`).
    pub node_id: String,
    /// Change the map without moving objects.
    #[arg(long)]
    pub skip_rebalance: bool,
}

#[derive(Subcommand, Debug)]
pub enum NodeCmd {
    /// The target stays in the map but gets no new objects; its objects move away.
    StartMaintenance(NodeArgs),
    /// The target takes its share of objects again.
    StopMaintenance(NodeArgs),
    /// Move the target's objects away, then remove it from the cluster (a
    /// proxy: out of the control plane's voters and the map, for good).
    Decommission {
        #[command(flatten)]
        node: NodeArgs,
        /// Also remove its objects from its disks.
        #[arg(long)]
        rm_user_data: bool,
        /// Remove it from the map but leave the process running.
        #[arg(long)]
        no_shutdown: bool,
    },
    /// Move the target's objects away, then stop it (it stays in the map, in
    /// maintenance); a proxy just stops (it stays a control-plane member).
    Shutdown(NodeArgs),
}

#[derive(Subcommand, Debug)]
pub enum StorageCmd {
    /// A target's mountpaths.
    Mountpath {
        #[command(subcommand)]
        cmd: MpathCmd,
    },
    /// Objects, sizes and disk use per bucket (as `ais bucket summary`).
    Summary(crate::objects::SummaryArgs),
    /// Capacity per target and mountpath (as `ais show storage`).
    Show {
        target_id: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Read-only report of a bucket's objects: counts, sizes, missing
    /// copies, small and large objects (as `ais scrub`).
    Validate(crate::views::ScrubArgs),
    /// Start a resilver (every target, or one): objects move to the
    /// mountpaths they belong on.
    Resilver {
        target_id: Option<String>,
        #[arg(long)]
        wait: bool,
    },
    /// Remove leftovers (temp files untouched for space.dont_cleanup_time,
    /// expired multipart uploads) on every target, or one.
    Cleanup {
        target_id: Option<String>,
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum MpathCmd {
    /// Show every target's mountpaths.
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Add a mountpath; objects that now belong on it are moved there (resilver).
    Attach { target_id: String, path: String },
    /// Move a mountpath's objects to the others, then stop using it.
    Detach { target_id: String, path: String },
    /// Use a disabled mountpath again.
    Enable { target_id: String, path: String },
    /// Stop using a mountpath without moving anything (its objects are unreadable until enabled).
    Disable { target_id: String, path: String },
}

pub async fn run(client: &Client, cmd: ClusterCmd) -> anyhow::Result<()> {
    let cmd = match cmd {
        ClusterCmd::AddRemoveNodes { cmd } => cmd,
        ClusterCmd::Rebalance { cmd } => {
            return match cmd.unwrap_or(RebalanceCmd::Start) {
                RebalanceCmd::Start => {
                    let id = client.start_rebalance().await?;
                    println!("Started global rebalance {id}. To monitor: 'ais show rebalance'");
                    Ok(())
                }
                RebalanceCmd::Show { json } => show_rebalance(client, json).await,
                RebalanceCmd::Stop => {
                    client.stop_jobs_of_kind("rebalance").await?;
                    println!("rebalance stopped");
                    Ok(())
                }
            };
        }
        ClusterCmd::Show { json } => return crate::fmt::show_cluster(client, json).await,
        ClusterCmd::SetPrimary { node_id } => {
            client
                .raw(
                    ais_client::HttpMethod::PUT,
                    &format!("/v1/cluster/proxy/{node_id}"),
                    None,
                )
                .await?;
            println!("{node_id} is the new primary");
            return Ok(());
        }
        ClusterCmd::Dashboard => return crate::views::dashboard(client).await,
        ClusterCmd::DownloadLogs { out_dir, severity } => {
            return crate::views::download_logs(client, out_dir.as_deref(), &severity).await;
        }
        ClusterCmd::ResetStats {
            node_id,
            errors_only,
        } => {
            let msg = ais_core::api::ActMsg {
                action: "reset-stats".into(),
                name: String::new(),
                value: serde_json::Value::Bool(errors_only),
            };
            let body = serde_json::to_vec(&msg)?;
            match &node_id {
                None => {
                    client
                        .raw(
                            ais_client::HttpMethod::PUT,
                            "/v1/cluster",
                            Some(body.into()),
                        )
                        .await?;
                    println!(
                        "Cluster statistics reset{}",
                        if errors_only { " (errors only)" } else { "" }
                    );
                }
                Some(id) => {
                    client.node_put(id, body.into()).await?;
                    println!(
                        "Node \"{id}\" statistics reset{}",
                        if errors_only { " (errors only)" } else { "" }
                    );
                }
            }
            return Ok(());
        }
        ClusterCmd::Shutdown { yes } => {
            if !yes {
                bail!(
                    "this stops every node of the cluster at {}: run again with --yes",
                    client.endpoint()
                );
            }
            let msg = ais_core::api::ActMsg::new("shutdown");
            client
                .raw(
                    ais_client::HttpMethod::PUT,
                    "/v1/cluster",
                    Some(serde_json::to_vec(&msg)?.into()),
                )
                .await?;
            println!("Cluster shutting down");
            return Ok(());
        }
    };
    let (action, a, rm_user_data, no_shutdown) = match cmd {
        NodeCmd::StartMaintenance(a) => ("start-maintenance", a, false, false),
        NodeCmd::StopMaintenance(a) => ("stop-maintenance", a, false, false),
        NodeCmd::Decommission {
            node,
            rm_user_data,
            no_shutdown,
        } => ("decommission-node", node, rm_user_data, no_shutdown),
        NodeCmd::Shutdown(a) => ("shutdown-node", a, false, false),
    };
    let msg = RmNodeMsg {
        sid: a.node_id.clone(),
        rm_user_data,
        skip_rebalance: a.skip_rebalance,
        no_shutdown,
        ..Default::default()
    };
    let proxy = client.smap().await?.pmap.contains_key(&a.node_id);
    let id = client.node_lifecycle(action, &msg).await?;
    if !id.is_empty() {
        println!("Started global rebalance {id}. To monitor: 'ais show rebalance'");
    }
    if proxy {
        // A proxy holds no objects: done when the primary answers.
        println!("{action} p[{}]: done", a.node_id);
        return Ok(());
    }
    if matches!(action, "decommission-node" | "shutdown-node") {
        // Done means done: the node's objects moved and the node left (or
        // shut down). A rebalance that could not move everything is an
        // error here, not a "done".
        wait_lifecycle(client, action, &a.node_id).await?;
    }
    println!("{action} t[{}]: done", a.node_id);
    Ok(())
}

/// Polls the primary until `sid`'s `action` ends (the primary records it
/// as running before it answers the action); an error unless it finished.
async fn wait_lifecycle(client: &Client, action: &str, sid: &str) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3600);
    loop {
        let states = client.node_lifecycle_states().await?;
        let rec = states.get(sid).filter(|r| r["action"] == action);
        if rec.is_none()
            && action == "decommission-node"
            && !client.smap().await?.tmap.contains_key(sid)
        {
            // A primary that restarted meanwhile knows nothing of it, but
            // the node is gone from the map: decommissioned.
            return Ok(());
        }
        if let Some(r) = rec {
            let err = r["err"].as_str().unwrap_or("");
            match r["state"].as_str().unwrap_or("") {
                "finished" => return Ok(()),
                "running" => {}
                state => bail!("{action} t[{sid}] {state}: {err}"),
            }
        }
        if std::time::Instant::now() > deadline {
            bail!("{action} t[{sid}]: still running after an hour; see 'ais show rebalance'");
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// `ais show rebalance`: the newest rebalance, per target.
pub async fn show_rebalance(client: &Client, json: bool) -> anyhow::Result<()> {
    let info = client.rebalance_info().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(());
    }
    let Some(info) = info else {
        println!("No rebalance has run.");
        return Ok(());
    };
    let s = &info.status;
    let state = if !s.finished() {
        "Running"
    } else if s.aborted {
        "Aborted"
    } else if !s.err.is_empty() || s.err_count > 0 {
        "Failed"
    } else {
        "Finished"
    };
    println!(
        "Rebalance {}: {state}, {} objects ({}) moved, {} errors",
        s.uuid,
        s.objs,
        size_iec(s.bytes),
        s.err_count
    );
    let rows: Vec<Vec<String>> = info
        .targets
        .iter()
        .map(|t| {
            vec![
                format!("t[{}]", t.target),
                t.objs.to_string(),
                size_iec(t.bytes),
                t.err_count.to_string(),
                t.state.clone(),
                t.err.lines().next().unwrap_or("").to_string(),
            ]
        })
        .collect();
    table(
        &[
            "TARGET",
            "OBJECTS MOVED",
            "BYTES MOVED",
            "ERRORS",
            "STATE",
            "ERROR",
        ],
        &rows,
    );
    if !s.err.is_empty() {
        println!("{}", s.err);
    }
    Ok(())
}

pub async fn storage(client: &Client, cmd: StorageCmd) -> anyhow::Result<()> {
    let cmd = match cmd {
        StorageCmd::Mountpath { cmd } => cmd,
        StorageCmd::Summary(a) => return crate::objects::summary(client, a).await,
        StorageCmd::Show { target_id, json } => {
            return crate::views::storage(client, target_id.as_deref(), json).await
        }
        StorageCmd::Validate(a) => return crate::views::scrub(client, a).await,
        StorageCmd::Cleanup { target_id, wait } => {
            let node =
                target_id.map(|t| t.trim_start_matches("t[").trim_end_matches(']').to_string());
            return crate::jobs::start_kind(client, "cleanup", node.as_deref(), None, wait).await;
        }
        StorageCmd::Resilver { target_id, wait } => {
            let node =
                target_id.map(|t| t.trim_start_matches("t[").trim_end_matches(']').to_string());
            return crate::jobs::start_kind(client, "resilver", node.as_deref(), None, wait).await;
        }
    };
    let smap = client.smap().await?;
    let (action, tid, path) = match cmd {
        MpathCmd::Show { json } => {
            let mut all = std::collections::BTreeMap::new();
            for (id, t) in &smap.tmap {
                all.insert(id.clone(), client.mountpaths(t.url()).await?);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                for (id, m) in all {
                    println!("t[{id}]:");
                    for p in m.available {
                        println!("\t{p}");
                    }
                    for p in m.disabled {
                        println!("\t{p} (disabled)");
                    }
                }
            }
            return Ok(());
        }
        MpathCmd::Attach { target_id, path } => ("attach-mp", target_id, path),
        MpathCmd::Detach { target_id, path } => ("detach-mp", target_id, path),
        MpathCmd::Enable { target_id, path } => ("enable-mp", target_id, path),
        MpathCmd::Disable { target_id, path } => ("disable-mp", target_id, path),
    };
    let tid = tid
        .trim_start_matches("t[")
        .trim_end_matches(']')
        .to_string();
    let t = smap.tmap.get(&tid).with_context(|| {
        format!("target {tid} is not in the cluster map (see 'ais show cluster')")
    })?;
    let id = client.mountpath_action(t.url(), action, &path).await?;
    println!("{action} {path} on t[{tid}]: done");
    if !id.is_empty() {
        println!("Started resilver {id}. To monitor: 'ais show job {id}'");
    }
    Ok(())
}
