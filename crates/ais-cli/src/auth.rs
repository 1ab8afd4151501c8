//! `ais auth ...`: log in/out and manage users, roles and tokens (a cluster
//! running with `AIS_AUTH=1`). The token is kept in
//! `~/.config/ais/cli/auth.token` (or `AIS_AUTHN_TOKEN_FILE`) and sent by every
//! command; `AIS_AUTHN_TOKEN` overrides it.

use ais_client::auth::{saved_token, token_file};
use ais_client::Client;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum AuthCmd {
    /// Log in and save the token for later commands.
    Login {
        user: String,
        /// Password (prompted from stdin when omitted).
        #[arg(short = 'p', long)]
        password: Option<String>,
        /// Token lifetime (e.g. 90s, 10m, 24h); default: the server's (24h).
        #[arg(long)]
        expires: Option<String>,
    },
    /// Revoke the saved token and remove it.
    Logout,
    /// Add a user or a role.
    Add {
        #[command(subcommand)]
        what: AddCmd,
    },
    /// Show users or roles.
    Show {
        #[command(subcommand)]
        what: ShowCmd,
    },
    /// Remove a user or a role, or revoke a token.
    Rm {
        #[command(subcommand)]
        what: RmCmd,
    },
    /// Change a user (password, roles) or a role (permissions).
    Set {
        #[command(subcommand)]
        what: SetCmd,
    },
    /// `ais auth update cluster CLUSTER_ID [ALIAS] [URL...]`.
    Update {
        #[command(subcommand)]
        what: UpdateCmd,
    },
    /// Revoke a token (admin, or your own); as `ais auth rm token`.
    Revoke { token: String },
    /// Who the saved token says you are: user, expiry, roles, permissions.
    Whoami,
}

#[derive(Subcommand, Debug)]
pub enum AddCmd {
    /// `ais auth add user NAME PASSWORD [--role R ...]`
    User {
        name: String,
        password: String,
        /// Admin, ClusterOwner, BucketOwner (read-write), Guest (read-only), or a custom role.
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// `ais auth add role NAME PERM [--bucket B]` (PERM: AIStore access bits, or ro|rw|su).
    Role {
        name: String,
        perm: String,
        #[arg(long)]
        bucket: Option<String>,
        #[arg(long, default_value = "")]
        desc: String,
    },
    /// `ais auth add cluster [ALIAS] [URL...]`: register another cluster
    /// (default URL: this CLI's endpoint).
    Cluster { args: Vec<String> },
}

#[derive(Subcommand, Debug)]
pub enum ShowCmd {
    /// Users and their roles.
    User,
    /// Roles.
    Role,
    /// The cluster AuthN serves (one: this cluster, alias "local").
    Cluster,
}

#[derive(Subcommand, Debug)]
pub enum RmCmd {
    /// Remove a user.
    User { name: String },
    /// Remove a role (refused while users hold it).
    Role { name: String },
    /// Revoke a token.
    Token { token: String },
    /// Remove a registered cluster (by id or alias).
    Cluster { id: String },
}

#[derive(Subcommand, Debug)]
pub enum UpdateCmd {
    /// Change a registered cluster's alias and/or URLs.
    Cluster { id: String, args: Vec<String> },
}

/// `[ALIAS] [URL...]`: the words that are URLs, and the one that is not.
fn alias_and_urls(args: &[String]) -> anyhow::Result<(String, Vec<String>)> {
    let (urls, names): (Vec<String>, Vec<String>) = args
        .iter()
        .cloned()
        .partition(|a| a.starts_with("http://") || a.starts_with("https://"));
    if names.len() > 1 {
        anyhow::bail!(
            "expected [ALIAS] [URL...], got {} names: {}",
            names.len(),
            names.join(" ")
        );
    }
    Ok((names.into_iter().next().unwrap_or_default(), urls))
}

#[derive(Subcommand, Debug)]
pub enum SetCmd {
    /// `ais auth set user NAME [PASSWORD] [--role R ...]`
    User {
        name: String,
        password: Option<String>,
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// As `ais auth update cluster CLUSTER_ID [ALIAS] [URL...]`.
    Cluster { id: String, args: Vec<String> },
    /// `ais auth set role NAME PERM [--bucket B]` (replaces its permissions).
    Role {
        name: String,
        perm: String,
        #[arg(long)]
        bucket: Option<String>,
        #[arg(long, default_value = "")]
        desc: String,
    },
}

fn perm_bits(s: &str) -> anyhow::Result<u64> {
    const RO: u64 = 1 | 2 | 256 | 512;
    const RW: u64 = RO | 4 | 8 | 16 | 32;
    Ok(match s {
        "ro" | "read-only" => RO | (1 << 12) | (1 << 13),
        "rw" | "read-write" => RW | (1 << 12) | (1 << 13),
        "su" | "admin" => (1 << 18) - 1,
        n => n
            .parse()
            .map_err(|_| anyhow::anyhow!("invalid permission \"{n}\" (a number, ro, rw or su)"))?,
    })
}

pub async fn run(client: &Client, cmd: AuthCmd) -> anyhow::Result<()> {
    match cmd {
        AuthCmd::Login {
            user,
            password,
            expires,
        } => {
            let password = match password {
                Some(p) => p,
                None => {
                    eprint!("Password: ");
                    let mut s = String::new();
                    std::io::stdin().read_line(&mut s)?;
                    s.trim_end_matches(['\n', '\r']).to_string()
                }
            };
            let exp = expires.as_deref().map(crate::parse_secs).transpose()?;
            let token = client.login(&user, &password, exp).await?;
            let path = token_file();
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            write_private(&path, &serde_json::json!({ "token": token }).to_string())?;
            println!("Logged in ({})", path.display());
        }
        AuthCmd::Logout => {
            let Some(tok) = saved_token() else {
                anyhow::bail!("not logged in");
            };
            // Revoke first; forget it locally even if the cluster is gone.
            let res = client.revoke_token(&tok).await;
            let _ = std::fs::remove_file(token_file());
            res?;
            println!("Logged out");
        }
        AuthCmd::Add { what } => match what {
            AddCmd::User {
                name,
                password,
                roles,
            } => {
                client.add_user(&name, &password, &roles).await?;
                println!("User \"{name}\" added");
            }
            AddCmd::Role {
                name,
                perm,
                bucket,
                desc,
            } => {
                client
                    .add_role(&name, &desc, perm_bits(&perm)?, bucket.as_deref())
                    .await?;
                println!("Role \"{name}\" added");
            }
            AddCmd::Cluster { args } => {
                let (alias, mut urls) = alias_and_urls(&args)?;
                if urls.is_empty() {
                    urls.push(client.endpoint().to_string());
                }
                let id = client.auth_add_cluster(&alias, &urls).await?;
                println!(
                    "Cluster \"{id}\" registered{}",
                    if alias.is_empty() {
                        String::new()
                    } else {
                        format!(" as \"{alias}\"")
                    }
                );
            }
        },
        AuthCmd::Show { what } => match what {
            ShowCmd::User => {
                let users = client.users().await?;
                println!("{:<20} ROLES", "NAME");
                for (name, u) in users.as_object().into_iter().flatten() {
                    let roles: Vec<&str> = u["roles"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|r| r["name"].as_str())
                        .collect();
                    println!("{name:<20} {}", roles.join(", "));
                }
            }
            ShowCmd::Cluster => {
                let v = client.auth_clusters().await?;
                let list: Vec<serde_json::Value> = match &v["clusters"] {
                    serde_json::Value::Object(m) => m.values().cloned().collect(),
                    serde_json::Value::Array(a) => a.clone(),
                    _ => Vec::new(),
                };
                println!("{:<16} {:<10} URLS", "CLUSTER ID", "ALIAS");
                for c in list {
                    let urls: Vec<String> = c["urls"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|u| u.as_str().map(str::to_string))
                        .collect();
                    println!(
                        "{:<16} {:<10} {}",
                        c["id"].as_str().unwrap_or(""),
                        c["alias"].as_str().unwrap_or(""),
                        urls.join(", ")
                    );
                }
            }
            ShowCmd::Role => {
                let roles = client.roles().await?;
                println!("{:<16} {:<6} DESCRIPTION", "ROLE", "ADMIN");
                for r in roles.as_array().into_iter().flatten() {
                    println!(
                        "{:<16} {:<6} {}",
                        r["name"].as_str().unwrap_or(""),
                        r["admin"].as_bool().unwrap_or(false),
                        r["desc"].as_str().unwrap_or("")
                    );
                }
            }
        },
        AuthCmd::Rm { what } => match what {
            RmCmd::User { name } => {
                client.remove_user(&name).await?;
                println!("User \"{name}\" removed");
            }
            RmCmd::Role { name } => {
                client.remove_role(&name).await?;
                println!("Role \"{name}\" removed");
            }
            RmCmd::Token { token } => {
                client.revoke_token(&token).await?;
                println!("Token revoked");
            }
            RmCmd::Cluster { id } => {
                client.auth_rm_cluster(&id).await?;
                println!("Cluster \"{id}\" removed");
            }
        },
        AuthCmd::Update {
            what: UpdateCmd::Cluster { id, args },
        } => update_cluster(client, &id, &args).await?,
        AuthCmd::Set { what } => match what {
            SetCmd::Cluster { id, args } => update_cluster(client, &id, &args).await?,
            SetCmd::User {
                name,
                password,
                roles,
            } => {
                if password.is_none() && roles.is_empty() {
                    anyhow::bail!("nothing to change: give a new PASSWORD and/or --role");
                }
                client
                    .update_user(&name, password.as_deref().unwrap_or(""), &roles)
                    .await?;
                println!("User \"{name}\" updated");
            }
            SetCmd::Role {
                name,
                perm,
                bucket,
                desc,
            } => {
                client
                    .update_role(&name, &desc, perm_bits(&perm)?, bucket.as_deref())
                    .await?;
                println!("Role \"{name}\" updated");
            }
        },
        AuthCmd::Whoami => crate::views::whoami(client).await?,
        AuthCmd::Revoke { token } => {
            client.revoke_token(&token).await?;
            println!("Token revoked");
        }
    }
    Ok(())
}

async fn update_cluster(client: &Client, id: &str, args: &[String]) -> anyhow::Result<()> {
    let (alias, urls) = alias_and_urls(args)?;
    if alias.is_empty() && urls.is_empty() {
        anyhow::bail!("nothing to change: give a new ALIAS and/or URLs");
    }
    client.auth_update_cluster(id, &alias, &urls).await?;
    println!("Cluster \"{id}\" updated");
    Ok(())
}

fn write_private(path: &std::path::Path, s: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(s.as_bytes())
}
