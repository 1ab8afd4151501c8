//! Parity with AIStore's CLI beyond the commands themselves: the AIStore
//! commands this tool intentionally does not support (each fails with a
//! reason, before argument parsing, `--help` included), user-defined
//! top-level aliases (`ais alias ...`, expanded before parsing), and
//! `ais search` over the command tree.
//!
//! The checked-in list of AIStore's CLI tree and what this tool does with
//! each command is `python/tests/data/aistore_cli_tree.tsv`;
//! `python/tests/test_cli_coverage.py` runs every entry.

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// AIStore commands (and flags, as `--flag`) that aistore-rs does not
/// support, with the reason users get.
pub const UNSUPPORTED: &[(&str, &str)] = &[
    ("advanced", "AIStore's developer commands (preload, remove-from-smap, random-node, random-mountpath, rotate-logs, check-lock, enable/disable-backend) have no aistore-rs counterpart"),
    ("auth set config", "AuthN configuration is not exposed (it is the cluster's auth settings)"),
    ("auth show config", "AuthN configuration is not exposed (it is the cluster's auth settings)"),
    ("auth show oidc", "tokens are HS256 JWTs signed with the cluster secret: no OIDC discovery"),
    ("auth show jwks", "tokens are HS256 JWTs signed with the cluster secret: no JWKS"),
    ("auth show pubkey", "tokens are HS256 JWTs signed with the cluster secret: no public key"),
    ("auth rotate-key", "tokens are HS256 JWTs signed with the cluster secret: no signing key rotation"),
    ("bucket lru", "buckets have no LRU properties; LRU is configured cluster-wide ('ais config cluster lru.enabled=true')"),
    ("bucket rechunk", "chunked objects (rechunk) are not implemented"),
    ("bucket shard-index", "shard indexes are not implemented"),
    ("cluster add-remove-nodes join", "a node joins by starting it with the primary's URL; there is no join by request"),
    ("cluster decommission", "decommission of the whole cluster is not supported: decommission its targets one by one"),
    ("cluster drop-lcache", "dropping the object-metadata cache is not implemented"),
    ("cluster reload-backend-creds", "backend credentials are read when a node starts; reloading them by request is not implemented"),
    ("cluster remote-attach", "attaching remote AIS clusters is not supported"),
    ("cluster remote-detach", "attaching remote AIS clusters is not supported"),
    ("config cli", "the CLI has no config file: it is configured by environment (AIS_ENDPOINT, AIS_AUTHN_TOKEN, AIS_AUTHN_TOKEN_FILE); aliases: 'ais alias'"),
    ("ml lhotse-get-batch", "Lhotse manifests are not supported; use 'ais ml get-batch'"),
    ("performance disk", "per-disk statistics are not collected"),
    ("performance intra-data", "intra-cluster data traffic is not measured"),
    ("show performance disk", "per-disk statistics are not collected"),
    ("show performance intra-data", "intra-cluster data traffic is not measured"),
    ("remote-cluster", "attaching remote AIS clusters is not supported"),
    ("show remote", "attaching remote AIS clusters is not supported"),
    ("show storage disk", "per-disk statistics are not collected"),
    ("show tls", "TLS certificates are not managed by aistore-rs"),
    ("storage disk", "per-disk statistics are not collected"),
    ("storage mountpath fshc", "the filesystem health checker cannot be run by request"),
    ("storage mountpath rescan-disks", "rescanning a mountpath's disks is not implemented"),
    ("tls", "TLS certificates are not managed by aistore-rs"),
];

/// The command words of a command line: its leading positional arguments
/// (global `--endpoint` skipped).
fn words(args: &[String]) -> Vec<&str> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--endpoint" {
            it.next();
            continue;
        }
        if a.starts_with('-') {
            if out.is_empty() {
                continue;
            }
            break;
        }
        out.push(a.as_str());
    }
    out
}

/// The unsupported command (the longest entry) `args` (without the program
/// name) asks for, with its reason.
pub fn unsupported(args: &[String]) -> Option<(&'static str, &'static str)> {
    let w = words(args);
    UNSUPPORTED
        .iter()
        .filter(|(path, _)| {
            let mut n = 0;
            for part in path.split(' ') {
                if part.starts_with("--") {
                    if !args
                        .iter()
                        .any(|a| a == part || a.starts_with(&format!("{part}=")))
                    {
                        return false;
                    }
                } else {
                    if w.get(n) != Some(&part) {
                        return false;
                    }
                    n += 1;
                }
            }
            true
        })
        .max_by_key(|(path, _)| path.len())
        .copied()
}

/// AIStore's built-in top-level aliases (all of them commands here too).
pub const BUILTIN_ALIASES: &[(&str, &str)] = &[
    ("blob-download", "job start blob-download"),
    ("cp", "bucket cp"),
    ("create", "bucket create"),
    ("download", "job start download"),
    ("dsort", "job start dsort"),
    ("evict", "bucket evict"),
    ("get", "object get"),
    ("ls", "bucket ls"),
    ("prefetch", "object prefetch"),
    ("put", "object put"),
    ("rmb", "bucket rm"),
    ("rmo", "object rm"),
    ("scrub", "storage validate"),
    ("space-cleanup", "storage cleanup"),
    ("start", "job start"),
    ("stop", "job stop"),
    ("wait", "job wait"),
];

#[derive(Subcommand, Debug)]
pub enum AliasCmd {
    /// Show every alias (built-in and user-defined).
    Show,
    /// Add or change an alias: `ais alias set NAME "COMMAND WORDS"`.
    Set { name: String, command: String },
    /// Remove a user-defined alias.
    Rm { name: String },
    /// Remove every user-defined alias.
    Reset,
}

/// Where user-defined aliases are kept: `AIS_CLI_CONFIG_DIR`, else
/// `$XDG_CONFIG_HOME` (or `~/.config`) `/ais/cli`, file `aliases.json`.
fn alias_file() -> PathBuf {
    let dir = std::env::var_os("AIS_CLI_CONFIG_DIR")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("XDG_CONFIG_HOME")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
                        .join(".config")
                })
                .join("ais")
                .join("cli")
        });
    dir.join("aliases.json")
}

fn user_aliases() -> BTreeMap<String, String> {
    std::fs::read_to_string(alias_file())
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

fn save_aliases(m: &BTreeMap<String, String>) -> Result<()> {
    let f = alias_file();
    if let Some(dir) = f.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    std::fs::write(&f, serde_json::to_string_pretty(m)?)
        .with_context(|| format!("write {}", f.display()))
}

/// `args` (program name first) with a user-defined alias in the command
/// position replaced by its words.
pub fn expand_alias(args: Vec<String>) -> Vec<String> {
    let Some(pos) = args
        .iter()
        .enumerate()
        .skip(1)
        .find(|(i, a)| !a.starts_with('-') && args[i - 1] != "--endpoint")
        .map(|(i, _)| i)
    else {
        return args;
    };
    let aliases = user_aliases();
    let Some(to) = aliases.get(&args[pos]) else {
        return args;
    };
    let mut out: Vec<String> = args[..pos].to_vec();
    out.extend(to.split_whitespace().map(str::to_string));
    out.extend(args[pos + 1..].iter().cloned());
    out
}

pub fn alias(cmd: Option<AliasCmd>, top_level: &[String]) -> Result<()> {
    match cmd.unwrap_or(AliasCmd::Show) {
        AliasCmd::Show => {
            let mut rows: Vec<Vec<String>> = BUILTIN_ALIASES
                .iter()
                .map(|(a, c)| vec![a.to_string(), c.to_string(), "built-in".into()])
                .collect();
            rows.extend(
                user_aliases()
                    .into_iter()
                    .map(|(a, c)| vec![a, c, "user".into()]),
            );
            crate::fmt::table(&["ALIAS", "COMMAND", "KIND"], &rows);
        }
        AliasCmd::Set { name, command } => {
            let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid {
                bail!("alias must start with a letter and can only contain letters, numbers, hyphens (-), and underscores (_)");
            }
            if top_level.iter().any(|c| c == &name) {
                bail!("\"{name}\" is a command (or a built-in alias); choose another name");
            }
            let first = command.split_whitespace().next().unwrap_or("");
            if !top_level.iter().any(|c| c == first) {
                bail!("\"{command}\": no such command (e.g. \"bucket ls\")");
            }
            let mut m = user_aliases();
            m.insert(name.clone(), command.clone());
            save_aliases(&m)?;
            println!("Alias \"{name}\" now stands for \"{command}\"");
        }
        AliasCmd::Rm { name } => {
            let mut m = user_aliases();
            if m.remove(&name).is_none() {
                bail!("no user-defined alias \"{name}\"");
            }
            save_aliases(&m)?;
            println!("Alias \"{name}\" removed");
        }
        AliasCmd::Reset => {
            save_aliases(&BTreeMap::new())?;
            println!("User-defined aliases removed");
        }
    }
    Ok(())
}

/// `ais search KEYWORD...`: commands whose path or description holds every
/// keyword (case-insensitive), unsupported AIStore commands included.
pub fn search(root: &clap::Command, keywords: &[String]) -> Result<()> {
    fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<(String, String)>) {
        for sub in cmd.get_subcommands() {
            if sub.is_hide_set() || sub.get_name() == "help" {
                continue;
            }
            let p = format!("{path} {}", sub.get_name());
            let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
            out.push((p.clone(), about.lines().next().unwrap_or("").to_string()));
            walk(sub, &p, out);
        }
    }
    let mut all = Vec::new();
    walk(root, "ais", &mut all);
    all.extend(
        UNSUPPORTED
            .iter()
            .map(|(p, why)| (format!("ais {p}"), format!("(not supported: {why})"))),
    );
    let kws: Vec<String> = keywords.iter().map(|k| k.to_lowercase()).collect();
    let hits: Vec<Vec<String>> = all
        .into_iter()
        .filter(|(p, about)| {
            let hay = format!("{p} {about}").to_lowercase();
            kws.iter().all(|k| hay.contains(k.as_str()))
        })
        .map(|(p, a)| vec![p, a])
        .collect();
    if hits.is_empty() {
        bail!("no command matches \"{}\"", keywords.join(" "));
    }
    crate::fmt::table(&["COMMAND", "DESCRIPTION"], &hits);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn unsupported_matches_leading_words_and_flags() {
        assert!(unsupported(&a("job rm download x")).is_none());
        assert_eq!(unsupported(&a("start mirror ais://b --copies 2")), None);
        assert!(unsupported(&a("job start download http://x/a ais://b")).is_none());
        assert!(unsupported(&a("job start dsort -f spec.json")).is_none());
        assert!(unsupported(&a("ls s3://b --inventory")).is_none());
        assert_eq!(
            unsupported(&a("--endpoint http://x tls show")).map(|u| u.0),
            Some("tls")
        );
        assert!(unsupported(&a("ls ais://b")).is_none());
        assert!(unsupported(&a("put tls ais://b/tls")).is_none());
        assert!(unsupported(&a("job start lru")).is_none());
    }
}
