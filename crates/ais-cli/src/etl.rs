//! `ais etl ...`: initialise ETLs from code or a runtime spec, list/show them,
//! read logs, stop/start/remove, and transform single objects.

use crate::fmt::{size_iec, table};
use crate::objects::{parse_object, save};
use ais_client::{Client, InitCodeMsg};
use anyhow::{bail, Context};
use clap::{Args, Subcommand};

#[derive(Subcommand, Debug)]
pub enum EtlCmd {
    /// Initialise an ETL from Python code or a runtime spec.
    Init {
        #[command(subcommand)]
        what: InitCmd,
    },
    /// List ETLs (same as `ais etl show` without a name).
    #[command(alias = "ls")]
    List,
    /// Show all ETLs, one ETL's code, runtime and per-target counters, or
    /// `ais etl show errors NAME JOB`: every failed object of an offline job.
    Show {
        name: Option<String>,
        job: Option<String>,
        job2: Option<String>,
    },
    /// Print an ETL's logs (all targets, or one).
    #[command(name = "view-logs", visible_alias = "logs")]
    Logs {
        name: String,
        target: Option<String>,
    },
    /// Stop an ETL on every target (it can be started again).
    Stop { name: String },
    /// Start a stopped ETL.
    Start { name: String },
    /// Stop and remove an ETL.
    #[command(alias = "remove")]
    Rm { name: String },
    /// Transform one object: `ais etl object NAME ais://B/O OUT|-`, or into
    /// another bucket: `ais etl object NAME cp ais://SRC/O ais://DST/O2`.
    Object(ObjectArgs),
    /// Transform a bucket (or a selection) into another bucket, as a job.
    Bucket {
        /// ETL name, or a pipeline: "a>>b>>c".
        name: String,
        #[command(flatten)]
        sel: crate::jobs::SelectArgs,
    },
    /// Run every object of a bucket (or a selection) through an ETL and
    /// write nothing: validation and policy checks; the objects it fails on
    /// are the job's errors ('ais etl show errors NAME JOB').
    Inspect {
        /// ETL name, or a pipeline: "a>>b>>c".
        name: String,
        /// Source bucket ais://SRC.
        src: String,
        /// Only objects whose names start with this prefix.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Only objects named by this template, e.g. "shard-{0000..0999}.tar".
        #[arg(long, default_value = "")]
        template: String,
        /// Only these objects (comma-separated).
        #[arg(long, default_value = "")]
        list: String,
        /// Concurrent objects per target (0 = default, -1 = serial).
        #[arg(long = "num-workers", default_value_t = 0)]
        num_workers: i64,
        /// Wait for the job, with a progress bar.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up waiting after this long (e.g. 10m).
        #[arg(long, default_value = "")]
        timeout: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum InitCmd {
    /// From a Python file (+ optional requirements file).
    Code(InitCodeArgs),
    /// From an AIStore runtime-spec YAML file.
    Spec {
        /// The spec file.
        file: String,
        /// Override the spec's name.
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct InitCodeArgs {
    /// ETL name (6-32 chars: lowercase letters, digits, '-').
    #[arg(long)]
    name: String,
    /// Python source: a module with transform(data[, path, etl_args]) or an io:// script.
    #[arg(long = "from-file", alias = "code")]
    from_file: String,
    /// requirements.txt-style dependencies, installed once per host in an isolated env.
    #[arg(long = "deps-file", alias = "deps")]
    deps_file: Option<String>,
    /// python3 (the host's interpreter) or python3.N.
    #[arg(long, default_value = "python3")]
    runtime: String,
    /// io:// (stdin→stdout script), hpush://, hpull:// or ws://.
    #[arg(long = "comm-type", default_value = "hpush://")]
    comm_type: String,
    /// How long to wait for every target to be ready.
    #[arg(long = "timeout", alias = "init-timeout", default_value = "5m")]
    timeout: String,
    /// Per-object timeout.
    #[arg(long = "obj-timeout", default_value = "45s")]
    obj_timeout: String,
    /// Name of the transform function.
    #[arg(long = "transform", default_value = "transform")]
    transform: String,
    /// Python workers per target (0 = automatic).
    #[arg(long = "pool-size", default_value_t = 0)]
    pool_size: u32,
    /// io:// only: run each object in a fresh process (for scripts that cannot be re-run).
    #[arg(long = "fresh-process")]
    fresh_process: bool,
    /// Pass the object's local path instead of its bytes (transform reads the file).
    #[arg(long = "arg-type", default_value = "")]
    arg_type: String,
}

#[derive(Args, Debug)]
pub struct ObjectArgs {
    /// ETL name.
    name: String,
    /// Source object ais://BUCKET/OBJECT (or `cp`).
    object: String,
    /// Output file or - for stdout (with `cp`: the source object).
    out: String,
    /// With `cp`: the destination object ais://DST/NAME.
    dst: Option<String>,
    /// Arguments passed to the transform as etl_args.
    #[arg(long = "args")]
    args: Option<String>,
}

pub async fn run(client: &Client, cmd: EtlCmd) -> anyhow::Result<()> {
    match cmd {
        EtlCmd::Init { what } => match what {
            InitCmd::Code(a) => init_code(client, a).await,
            InitCmd::Spec { file, name } => init_spec(client, &file, name).await,
        },
        EtlCmd::List => list(client).await,
        EtlCmd::Show { name: None, .. } => list(client).await,
        EtlCmd::Show {
            name: Some(e),
            job: Some(n),
            job2: Some(j),
        } if e == "errors" => crate::jobs::errors(client, &n, &j).await,
        EtlCmd::Show { name: Some(n), .. } => show(client, &n).await,
        EtlCmd::Bucket { name, sel } => crate::jobs::start(client, Some(&name), sel).await,
        EtlCmd::Inspect {
            name,
            src,
            prefix,
            template,
            list,
            num_workers,
            wait,
            timeout,
        } => {
            // AIStore's inspect: a dry-run transform of the bucket onto
            // itself that goes on past errors.
            let sel = crate::jobs::SelectArgs {
                sync: false,
                dst: src.clone(),
                src,
                prefix,
                template,
                list,
                ext: String::new(),
                prepend: String::new(),
                dry_run: true,
                cont_on_err: true,
                num_workers,
                wait,
                timeout,
            };
            crate::jobs::start(client, Some(&name), sel).await
        }
        EtlCmd::Logs { name, target } => {
            for t in client.etl_logs(&name, target.as_deref()).await? {
                let text = t.text();
                println!("=== t[{}] ===", t.target_id);
                print!("{text}");
                if !text.ends_with('\n') && !text.is_empty() {
                    println!();
                }
            }
            Ok(())
        }
        EtlCmd::Stop { name } => {
            client.etl_stop(&name).await?;
            println!("ETL \"{name}\" stopped");
            Ok(())
        }
        EtlCmd::Start { name } => {
            client.etl_start(&name).await?;
            println!("ETL \"{name}\" started");
            Ok(())
        }
        EtlCmd::Rm { name } => {
            client.etl_remove(&name).await?;
            println!("ETL \"{name}\" removed");
            Ok(())
        }
        EtlCmd::Object(a) if a.object == "cp" => {
            let (sb, so) = parse_object(&a.out)?;
            let dst = a
                .dst
                .as_deref()
                .context("usage: ais etl object NAME cp ais://SRC/OBJ ais://DST/OBJ")?;
            let (db, d) = parse_object(dst)?;
            client
                .etl_object_to((&sb.name, &so), (&db.name, &d), &a.name, a.args.as_deref())
                .await?;
            println!("{} transformed by \"{}\" => {}", a.out, a.name, dst);
            Ok(())
        }
        EtlCmd::Object(a) => {
            if a.dst.is_some() {
                bail!("too many arguments: ais etl object NAME ais://B/O OUT, or NAME cp ais://SRC/O ais://DST/O2");
            }
            let (bck, obj) = parse_object(&a.object)?;
            let mut q: Vec<(&str, &str)> = vec![("etl_name", a.name.as_str())];
            if let Some(args) = &a.args {
                q.push(("etl_args", args.as_str()));
            }
            let resp = client.get_stream(&bck.name, &obj, &q, None).await?;
            let n = save(resp, &a.out).await?;
            if a.out != "-" {
                eprintln!(
                    "{} transformed by \"{}\" => \"{}\" ({})",
                    a.object,
                    a.name,
                    a.out,
                    size_iec(n)
                );
            }
            Ok(())
        }
    }
}

async fn init_spec(client: &Client, file: &str, name: Option<String>) -> anyhow::Result<()> {
    let raw =
        std::fs::read_to_string(file).with_context(|| format!("cannot read spec file {file}"))?;
    let mut body: serde_json::Value =
        serde_yaml_ng::from_str(&raw).with_context(|| format!("{file} is not valid YAML"))?;
    if !body.is_object() {
        bail!("{file}: expected a mapping with name, runtime, communication, ...");
    }
    if let Some(n) = name {
        body["name"] = n.into();
    }
    // Returns when every target runs the ETL (or with the first error).
    let id = client.etl_init_spec(&body).await?;
    initialized(body["name"].as_str().unwrap_or(""), &id);
    Ok(())
}

fn initialized(name: &str, id: &str) {
    println!("ETL \"{name}\" initialized (job {id})");
}

async fn init_code(client: &Client, a: InitCodeArgs) -> anyhow::Result<()> {
    let code = std::fs::read(&a.from_file)
        .with_context(|| format!("cannot read --from-file {}", a.from_file))?;
    let deps = match &a.deps_file {
        Some(f) => std::fs::read(f).with_context(|| format!("cannot read --deps-file {f}"))?,
        None => Vec::new(),
    };
    if !a.comm_type.contains("://")
        && !["io", "hpush", "hpull", "ws"].contains(&a.comm_type.as_str())
    {
        bail!(
            "invalid --comm-type \"{}\" (expected io://, hpush://, hpull:// or ws://)",
            a.comm_type
        );
    }
    let msg = InitCodeMsg {
        argument: a.arg_type,
        code,
        communication: a.comm_type,
        dependencies: deps,
        fresh_process: a.fresh_process,
        funcs: ais_client::EtlFuncs {
            transform: a.transform,
        },
        init_timeout: a.timeout,
        name: a.name,
        obj_timeout: a.obj_timeout,
        pool_size: a.pool_size,
        runtime: a.runtime,
    };
    let id = client.etl_init_code(&msg).await?;
    initialized(&msg.name, &id);
    Ok(())
}

async fn list(client: &Client) -> anyhow::Result<()> {
    let rows: Vec<Vec<String>> = client
        .etl_list()
        .await?
        .into_iter()
        .map(|e| {
            vec![
                e.id,
                e.stage,
                e.communication,
                e.obj_count.to_string(),
                e.err_count.to_string(),
            ]
        })
        .collect();
    table(&["NAME", "STAGE", "COMM TYPE", "OBJECTS", "ERRORS"], &rows);
    Ok(())
}

async fn show(client: &Client, name: &str) -> anyhow::Result<()> {
    let v = client.etl_show(name).await?;
    println!("NAME:          {name}");
    println!("RUNTIME:       {}", v.init_str("runtime"));
    println!("COMM TYPE:     {}", v.init_str("communication"));
    println!("OBJ TIMEOUT:   {}", v.init_str("obj_timeout"));
    let deps = v.dependencies();
    println!(
        "DEPENDENCIES:  {}",
        deps.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    println!();
    let rows: Vec<Vec<String>> = v
        .targets
        .iter()
        .map(|t| {
            vec![
                format!("t[{}]", t.target_id),
                t.stage.clone(),
                t.obj_count.to_string(),
                size_iec(t.in_bytes),
                size_iec(t.out_bytes),
                t.err_count.to_string(),
                format!("{:.2}ms", t.mean_latency_ms),
            ]
        })
        .collect();
    table(
        &[
            "TARGET",
            "STAGE",
            "OBJECTS",
            "IN",
            "OUT",
            "ERRORS",
            "MEAN LATENCY",
        ],
        &rows,
    );
    for t in v.targets.iter().filter(|t| !t.error.is_empty()) {
        println!("ERROR on t[{}]: {}", t.target_id, t.error);
    }
    if let Some(sb) = v.targets.iter().find_map(|t| t.sandbox.as_ref()) {
        println!("SANDBOX:       {}", sandbox_line(sb));
        if let Some(n) = sb["network"].as_str() {
            println!("NETWORK:       {n}");
        }
    }
    if let Some(c) = v.code() {
        println!("\nCODE:\n{c}");
    }
    Ok(())
}

/// One line of the protections a target reports for an ETL's processes.
fn sandbox_line(sb: &serde_json::Value) -> String {
    let s = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "none".to_string(),
        serde_json::Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    let l = &sb["limits"];
    format!(
        "uid={} gid={} mountns={} netns={} kill={} cgroups={} limits: memory={} nproc={} nofile={} cpu_seconds={} output={}",
        s(&sb["uid"]),
        s(&sb["gid"]),
        s(&sb["mountns"]),
        s(&sb["netns"]),
        s(&sb["kill"]),
        s(&sb["cgroups"]),
        s(&l["memory"]),
        s(&l["nproc"]),
        s(&l["nofile"]),
        s(&l["cpu_seconds"]),
        s(&l["output"]),
    )
}
