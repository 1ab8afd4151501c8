//! The AuthN API on the primary proxy, shaped as AIStore's AuthN server (and
//! the SDK's `AuthNClient`) expects it:
//!
//! | call | who |
//! |---|---|
//! | `POST /v1/users/NAME {password, expires_in(ns)}` → `{token}` (login) | anyone |
//! | `GET /v1/users`, `POST /v1/users {id, pass, roles}`, `PUT|DELETE /v1/users/NAME` | admin |
//! | `GET /v1/users/NAME` | admin or that user |
//! | `GET /v1/roles[/NAME]` | any valid token |
//! | `POST /v1/roles`, `PUT|DELETE /v1/roles/NAME` | admin |
//! | `DELETE /v1/tokens {token}` (revoke; logout) | admin or the token's owner |
//! | `GET /v1/clusters[/ID-or-alias]` | any valid token |
//! | `POST /v1/clusters {id, alias, urls}`, `PUT|DELETE /v1/clusters/ID-or-alias` | admin |
//!
//! This cluster is always registered, as `local`. Other clusters an admin
//! registers (AIStore's `ClusterManager`) are kept so that roles can name
//! them; they accept this AuthN's tokens when they share its secret.
//!
//! Users (salted PBKDF2 password hashes, never plaintext), custom roles,
//! registered clusters and the revoked-token list are one document of the
//! replicated control plane ([`DOC`]): every proxy keeps a copy (mode
//! 0600), the primary changes it through the log (acknowledged once a
//! majority of proxies has it), so users, roles and revocations survive a
//! change of primary. Targets never get it; a revocation is pushed to
//! every node in the map before the call returns.

use super::perm::{self, canonical_role, BUILTIN_ROLES};
use crate::cred::{self, Claims, Cred, Revoked, TokenError};
use crate::error::{ApiError, ApiResult};
use crate::http::{empty, json_ok, pct_decode, read_body, split_first, Ctx, Res};
use crate::rpc::{fan_out, Rpc, CONTROL_TIMEOUT};
use crate::state::NodeCore;
use ais_cluster::{DocChange, MetaStore, Primary};
use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// The control plane's document of the AuthN database.
pub const DOC: &str = "authn";

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct RoleInfo {
    pub name: String,
    #[serde(default)]
    pub desc: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clusters: Option<Vec<ClusterPerm>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<BucketPermMsg>>,
    #[serde(default)]
    pub admin: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ClusterPerm {
    pub id: String,
    /// Access bits as a decimal string (numbers accepted too).
    pub perm: Value,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct BucketPermMsg {
    pub bck: BckMsg,
    pub perm: Value,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct BckMsg {
    pub name: String,
    #[serde(default)]
    pub provider: String,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub namespace: Value,
}

fn perm_bits(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n.as_u64().unwrap_or(0),
        Value::String(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct User {
    id: String,
    /// `pbkdf2-sha256$ITERS$SALT$HASH`.
    pass_hash: String,
    roles: Vec<String>,
}

#[derive(Serialize, Deserialize, Default)]
struct Data {
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, RoleInfo>,
    revoked: Vec<Revoked>,
    /// Other clusters registered here (id → alias and URLs).
    #[serde(default)]
    clusters: BTreeMap<String, ClusterReg>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
struct ClusterReg {
    #[serde(default)]
    alias: String,
    #[serde(default)]
    urls: Vec<String>,
}

/// At most this many registered clusters (each a few URLs).
const MAX_CLUSTERS: usize = 1000;

/// Checks a cluster registration's fields (id, alias, URLs).
fn check_reg(id: &str, alias: &str, urls: &[String]) -> ApiResult<()> {
    let word = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    if !word(id) {
        return Err(ApiError::bad_request(format!(
            "cluster id \"{id}\": 1 to 64 letters, digits, '-', '_' or '.'"
        )));
    }
    if !alias.is_empty() && !word(alias) {
        return Err(ApiError::bad_request(format!(
            "cluster alias \"{alias}\": 1 to 64 letters, digits, '-', '_' or '.'"
        )));
    }
    if urls.is_empty() || urls.len() > 16 {
        return Err(ApiError::bad_request(
            "a cluster registration needs 1 to 16 URLs (\"urls\")",
        ));
    }
    if let Some(u) = urls
        .iter()
        .find(|u| !(u.starts_with("http://") || u.starts_with("https://")) || u.len() > 512)
    {
        return Err(ApiError::bad_request(format!(
            "cluster URL \"{u}\" is not an http(s) URL"
        )));
    }
    Ok(())
}

/// A 400 naming a field of `v` not in `allowed` (never ignored).
fn reject_fields(v: &Value, allowed: &[&str]) -> ApiResult<()> {
    match v.as_object() {
        Some(m) => match m.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(ApiError::bad_request(format!(
                "unknown field \"{k}\" (expected: {})",
                allowed.join(", ")
            ))),
            None => Ok(()),
        },
        None => Err(ApiError::bad_request("expected a JSON object")),
    }
}

/// The id of the registered cluster named by id or alias, or 404.
fn registered_id(d: &Data, name: &str) -> ApiResult<String> {
    find_cluster(d, name)
        .map(|(id, _)| id.clone())
        .ok_or_else(|| ApiError::NotFound(format!("cluster \"{name}\" is not registered")))
}

/// The registered cluster named by id or alias.
fn find_cluster<'a>(d: &'a Data, name: &str) -> Option<(&'a String, &'a ClusterReg)> {
    d.clusters
        .get_key_value(name)
        .or_else(|| d.clusters.iter().find(|(_, c)| c.alias == name))
}

/// `<data>/auth` of this proxy: the admin password file of a new cluster,
/// and where an earlier version kept the AuthN database.
static AUTH_DIR: OnceLock<PathBuf> = OnceLock::new();

/// Whether a generated admin password is waiting to be shown (written to
/// its file once the change that creates the admin is committed).
static PENDING_PASSWORD: Mutex<Option<String>> = Mutex::new(None);

/// Whether the change [`seed`] made took in the legacy database file.
static LEGACY_MERGED: Mutex<bool> = Mutex::new(false);

fn builtin(name: &str) -> Option<RoleInfo> {
    BUILTIN_ROLES
        .iter()
        .find(|r| r.0 == name)
        .map(|(name, desc, bits, admin)| RoleInfo {
            name: name.to_string(),
            desc: desc.to_string(),
            clusters: Some(vec![ClusterPerm {
                id: "*".into(),
                perm: Value::String(bits.to_string()),
            }]),
            buckets: None,
            admin: *admin,
        })
}

/// Called once on a proxy with AuthN on: where its `auth` dir is.
pub fn init(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let _ = AUTH_DIR.set(dir.to_path_buf());
    Ok(())
}

/// The AuthN document a new primary adds to its first change: the first
/// admin user of a cluster that has none (taking in the database an
/// earlier version kept in `<data>/auth/authn.json`, if any). Nothing when
/// AuthN is off or an admin exists.
pub fn seed(meta: &MetaStore) -> Vec<DocChange> {
    if cred::get().is_none() {
        return Vec::new();
    }
    let Some(dir) = AUTH_DIR.get() else {
        return Vec::new();
    };
    let mut data = match load(meta) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "auth: the replicated AuthN database is unreadable");
            return Vec::new();
        }
    };
    let has_admin = |d: &Data| {
        d.users
            .values()
            .any(|u| u.roles.iter().any(|r| r == "Admin"))
    };
    // A database an earlier version kept in a file on this proxy: merged in
    // (whoever became primary first may have created an admin already),
    // and the file retired only once the merge is committed.
    let legacy = dir.join("authn.json");
    let mut merged = false;
    match std::fs::read(&legacy).map(|raw| serde_json::from_slice::<Data>(&raw)) {
        Ok(Ok(old)) => {
            tracing::info!(file = %legacy.display(), "auth: taking the AuthN database into the control plane");
            for (k, u) in old.users {
                data.users.entry(k).or_insert(u);
            }
            for (k, r) in old.roles {
                data.roles.entry(k).or_insert(r);
            }
            for (k, c) in old.clusters {
                data.clusters.entry(k).or_insert(c);
            }
            for r in old.revoked {
                if !data.revoked.iter().any(|x| x.id == r.id) {
                    data.revoked.push(r);
                }
            }
            merged = true;
        }
        Ok(Err(e)) => {
            tracing::warn!(file = %legacy.display(), error = %e, "auth: ignoring an unreadable AuthN database")
        }
        Err(_) => {}
    }
    if let Ok(mut g) = LEGACY_MERGED.lock() {
        *g = merged;
    }
    if has_admin(&data) && !merged {
        return Vec::new();
    }
    if !has_admin(&data) {
        let pw = match crate::secrets::get("AIS_AUTH_ADMIN_PASSWORD") {
            Some(p) if !p.is_empty() => p,
            _ => {
                let b: [u8; 12] = rand::random();
                let pw: String = b.iter().map(|x| format!("{x:02x}")).collect();
                if let Ok(mut g) = PENDING_PASSWORD.lock() {
                    *g = Some(pw.clone());
                }
                pw
            }
        };
        data.users.insert(
            "admin".into(),
            User {
                id: "admin".into(),
                pass_hash: cred::hash_password(&pw),
                roles: vec!["Admin".into()],
            },
        );
        tracing::info!("auth: creating the first admin user \"admin\"");
    }
    match serde_json::to_value(&data) {
        Ok(v) => vec![meta.next_doc(DOC, Some(v))],
        Err(_) => Vec::new(),
    }
}

/// The change [`seed`] made is committed: a generated admin password goes
/// to its file (never into a log), and the legacy database file is retired.
pub fn seeded() {
    let Some(dir) = AUTH_DIR.get() else { return };
    let merged = LEGACY_MERGED
        .lock()
        .map(|mut g| std::mem::take(&mut *g))
        .unwrap_or(false);
    if merged {
        let _ = std::fs::rename(dir.join("authn.json"), dir.join("authn.json.migrated"));
    }
    let pw = PENDING_PASSWORD.lock().ok().and_then(|mut g| g.take());
    if let Some(pw) = pw {
        let file = dir.join("admin-password");
        match write_private(&file, pw.as_bytes()) {
            Ok(()) => eprintln!(
                "AIS_AUTH: created user \"admin\"; its generated password is in {} (mode 0600; \
                 set AIS_AUTH_ADMIN_PASSWORD to choose it)",
                file.display()
            ),
            Err(e) => {
                tracing::error!(file = %file.display(), error = %e, "auth: could not write the admin password")
            }
        }
    }
}

/// Sets this node's revoked-token list from its copy of the database.
pub fn refresh_revoked(meta: &MetaStore) {
    if let (Some(c), Ok((d, v))) = (cred::get(), load_versioned(meta)) {
        c.set_revoked_at(&d.revoked, v);
    }
}

/// Writes `data` to a new file readable by its owner only (0600 from the
/// start: never a moment world-readable).
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// This proxy's copy of the database.
fn load(meta: &MetaStore) -> ApiResult<Data> {
    load_versioned(meta).map(|(d, _)| d)
}

/// ... and its version (0: none yet).
fn load_versioned(meta: &MetaStore) -> ApiResult<(Data, u64)> {
    match meta.doc(DOC) {
        Some(d) => serde_json::from_value(d.data)
            .map(|data| (data, d.version))
            .map_err(|e| ApiError::internal(format!("unreadable AuthN database: {e}"))),
        None => Ok((Data::default(), 0)),
    }
}

fn read<T>(core: &NodeCore, f: impl FnOnce(&Data) -> ApiResult<T>) -> ApiResult<T> {
    f(&load(&core.meta)?)
}

/// Changes the database through the control plane (primary only): `f`
/// runs on the current copy under the metadata lock; answered once a
/// majority of proxies has the change.
async fn update<T>(
    pr: Option<&Primary>,
    f: impl FnOnce(&mut Data) -> ApiResult<T>,
) -> ApiResult<(T, Data)> {
    let pr = pr.ok_or_else(|| {
        ApiError::unavailable(
            "this proxy is not the primary: the AuthN database is changed through the primary",
        )
    })?;
    pr.update_docs(|meta| {
        let mut d = load(meta)?;
        let out = f(&mut d)?;
        let v = serde_json::to_value(&d)
            .map_err(|e| ApiError::internal(format!("encode AuthN database: {e}")))?;
        Ok::<_, ApiError>((vec![meta.next_doc(DOC, Some(v))], (out, d)))
    })
    .await
}

pub fn is_authn_path(path: &str) -> bool {
    let p = path.trim_end_matches('/');
    ["/v1/users", "/v1/roles", "/v1/tokens", "/v1/clusters"]
        .iter()
        .any(|r| p == *r || p.starts_with(&format!("{r}/")))
}

fn role_of(d: &Data, name: &str) -> Option<RoleInfo> {
    let name = canonical_role(name);
    builtin(name).or_else(|| d.roles.get(name).cloned())
}

fn user_info(d: &Data, u: &User) -> Value {
    let roles: Vec<RoleInfo> = u.roles.iter().filter_map(|r| role_of(d, r)).collect();
    json!({"id": u.id, "roles": roles})
}

/// Role names from `[RoleInfo | "name"]`, each checked to exist.
fn role_names(d: &Data, v: Option<&Value>) -> ApiResult<Vec<String>> {
    let mut out = Vec::new();
    for r in v.and_then(Value::as_array).into_iter().flatten() {
        let name = match r {
            Value::String(s) => s.as_str(),
            other => other.get("name").and_then(Value::as_str).unwrap_or(""),
        };
        let role = role_of(d, name)
            .ok_or_else(|| ApiError::NotFound(format!("role \"{name}\" does not exist")))?;
        out.push(role.name);
    }
    Ok(out)
}

/// A token for `u` on this cluster (`uuid`): only the role entries for
/// this cluster (by id, `local`, or every cluster `*`) count; those naming
/// another registered cluster are that cluster's business.
fn claims_for(d: &Data, u: &User, ttl_s: u64, cutoff_ms: u64, uuid: &str) -> Claims {
    let now = cred::now_s();
    let mut c = Claims {
        username: u.id.clone(),
        exp: now + ttl_s,
        iat: now,
        // Never before the user's last change (a clock step back, or a
        // login in the same millisecond as the change).
        iat_ms: cred::now_ms().max(cutoff_ms),
        jti: format!("{:032x}", rand::random::<u128>()),
        roles: u.roles.clone(),
        ..Default::default()
    };
    for r in u.roles.iter().filter_map(|r| role_of(d, r)) {
        c.admin |= r.admin;
        for cp in r.clusters.iter().flatten() {
            if matches!(cp.id.as_str(), "*" | "local") || cp.id == uuid {
                c.cluster_perm |= perm_bits(&cp.perm);
            }
        }
        for bp in r.buckets.iter().flatten() {
            let ns = bp
                .bck
                .namespace
                .get("uuid")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !ns.is_empty() && ns != uuid {
                continue;
            }
            c.buckets.push(cred::BucketPerm {
                bucket: bp.bck.name.clone(),
                perm: perm_bits(&bp.perm),
            });
        }
    }
    if c.admin {
        c.cluster_perm |= perm::ACCESS_SU;
    }
    c
}

async fn body_json(body: Body) -> ApiResult<Value> {
    let raw = read_body(body, 1 << 20).await?;
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&raw)
        .map_err(|e| ApiError::bad_request(format!("malformed request: {e}")))
}

fn need_admin(c: &Claims) -> ApiResult<()> {
    if c.admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "user \"{}\" is not an admin: only admins manage users, roles and other users' tokens",
            c.username
        )))
    }
}

pub async fn serve(
    core: &NodeCore,
    primary: Option<&Primary>,
    cred: &Cred,
    ctx: &Ctx,
    body: Body,
) -> Res {
    let rest = ctx.path.trim_start_matches("/v1/").trim_end_matches('/');
    let (kind, name) = split_first(rest);
    let name = pct_decode(name)?;
    let m = &ctx.method;
    // Login needs no token.
    if kind == "users" && !name.is_empty() && m == Method::POST {
        return login(core, primary, cred, ctx, &name, body).await;
    }
    let caller = super::user(cred, ctx)?;
    match (kind, m.clone(), name.is_empty()) {
        ("users", Method::GET, true) => {
            need_admin(&caller)?;
            let map = read(core, |d| {
                Ok(d.users
                    .iter()
                    .map(|(k, u)| (k.clone(), user_info(d, u)))
                    .collect::<BTreeMap<_, _>>())
            })?;
            json_ok(&map)
        }
        ("users", Method::GET, false) => {
            if caller.username != name {
                need_admin(&caller)?;
            }
            let v = read(core, |d| {
                d.users
                    .get(&name)
                    .map(|u| user_info(d, u))
                    .ok_or_else(|| user_not_found(&name))
            })?;
            json_ok(&v)
        }
        ("users", Method::POST, true) => {
            need_admin(&caller)?;
            let v = body_json(body).await?;
            let id = v
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let pass = v.get("pass").and_then(Value::as_str).unwrap_or("");
            if id.is_empty() || pass.is_empty() {
                return Err(ApiError::bad_request(
                    "user id and password (\"pass\") are required",
                ));
            }
            // Hashing is slow on purpose: not under the metadata lock.
            let hash = cred::hash_password(pass);
            update(primary, |d| {
                if d.users.contains_key(&id) {
                    return Err(ApiError::Conflict(format!("user \"{id}\" already exists")));
                }
                let roles = role_names(d, v.get("roles"))?;
                d.users.insert(
                    id.clone(),
                    User {
                        id: id.clone(),
                        pass_hash: hash,
                        roles,
                    },
                );
                Ok(())
            })
            .await?;
            tracing::info!(user = %id, by = %caller.username, "auth: user added");
            Ok(empty(StatusCode::OK))
        }
        ("users", Method::PUT, false) => {
            need_admin(&caller)?;
            let v = body_json(body).await?;
            let hash = v
                .get("pass")
                .and_then(Value::as_str)
                .filter(|p| !p.is_empty())
                .map(cred::hash_password);
            // Tokens carry the roles they were issued with: new roles or a
            // new password take effect for every token at once (in the same
            // change: no moment with the change made and old tokens good).
            let changed = v.get("roles").is_some_and(|r| !r.is_null()) || hash.is_some();
            update(primary, |d| {
                if !d.users.contains_key(&name) {
                    return Err(user_not_found(&name));
                }
                let roles = match v.get("roles") {
                    Some(r) if !r.is_null() => Some(role_names(d, Some(r))?),
                    _ => None,
                };
                if let Some(u) = d.users.get_mut(&name) {
                    if let Some(h) = hash {
                        u.pass_hash = h;
                    }
                    if let Some(r) = roles {
                        u.roles = r;
                    }
                }
                if changed {
                    void_user_tokens(d, std::slice::from_ref(&name));
                }
                Ok(())
            })
            .await?;
            if changed {
                publish_revoked(core, cred).await;
            }
            Ok(empty(StatusCode::OK))
        }
        ("users", Method::DELETE, false) => {
            need_admin(&caller)?;
            if name == caller.username {
                return Err(ApiError::bad_request(
                    "cannot delete the user you are logged in as",
                ));
            }
            // A deleted user's tokens stop working on every node now.
            update(primary, |d| {
                d.users.remove(&name).ok_or_else(|| user_not_found(&name))?;
                void_user_tokens(d, std::slice::from_ref(&name));
                Ok(())
            })
            .await?;
            publish_revoked(core, cred).await;
            tracing::info!(user = %name, by = %caller.username, "auth: user removed");
            Ok(empty(StatusCode::OK))
        }
        ("roles", Method::GET, true) => {
            let roles = read(core, |d| {
                let mut v: Vec<RoleInfo> =
                    BUILTIN_ROLES.iter().filter_map(|r| builtin(r.0)).collect();
                v.extend(d.roles.values().cloned());
                Ok(v)
            })?;
            json_ok(&roles)
        }
        ("roles", Method::GET, false) => {
            let r = read(core, |d| {
                role_of(d, &name).ok_or_else(|| role_not_found(&name))
            })?;
            json_ok(&r)
        }
        ("roles", Method::POST, true) | ("roles", Method::PUT, false) => {
            need_admin(&caller)?;
            let mut r: RoleInfo = serde_json::from_value(body_json(body).await?)
                .map_err(|e| ApiError::bad_request(format!("malformed role: {e}")))?;
            let creating = m == Method::POST;
            if !creating {
                r.name = name.clone();
            }
            if r.name.is_empty() {
                return Err(ApiError::bad_request("role name is required"));
            }
            if builtin(canonical_role(&r.name)).is_some() {
                return Err(ApiError::Conflict(format!(
                    "role \"{}\" is built in",
                    r.name
                )));
            }
            // Its holders' tokens carry the old permissions.
            let (holders, _) = update(primary, |d| {
                match (creating, d.roles.contains_key(&r.name)) {
                    (true, true) => {
                        return Err(ApiError::Conflict(format!(
                            "role \"{}\" already exists",
                            r.name
                        )))
                    }
                    (false, false) => return Err(role_not_found(&r.name)),
                    _ => {}
                }
                let holders: Vec<String> = d
                    .users
                    .values()
                    .filter(|u| u.roles.contains(&r.name))
                    .map(|u| u.id.clone())
                    .collect();
                d.roles.insert(r.name.clone(), r);
                void_user_tokens(d, &holders);
                Ok(holders)
            })
            .await?;
            if !holders.is_empty() {
                publish_revoked(core, cred).await;
            }
            Ok(empty(StatusCode::OK))
        }
        ("roles", Method::DELETE, false) => {
            need_admin(&caller)?;
            update(primary, |d| {
                if d.users.values().any(|u| u.roles.contains(&name)) {
                    return Err(ApiError::Conflict(format!(
                        "role \"{name}\" is assigned to users"
                    )));
                }
                d.roles
                    .remove(&name)
                    .map(|_| ())
                    .ok_or_else(|| role_not_found(&name))
            })
            .await?;
            Ok(empty(StatusCode::OK))
        }
        ("tokens", Method::DELETE, true) => {
            let v = body_json(body).await?;
            let tok = v
                .get("token")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if tok.is_empty() {
                return Err(ApiError::bad_request("missing \"token\" to revoke"));
            }
            if super::bearer(ctx) != Some(tok.as_str()) {
                need_admin(&caller)?;
            }
            revoke(core, primary, cred, &tok).await
        }
        ("clusters", Method::GET, _) => {
            // This cluster, as `local`, and the ones registered (by id or alias).
            let uuid = core.meta.cluster_uuid();
            let local = json!({"id": uuid, "alias": "local", "urls": [core.snode.url()]});
            if name.is_empty() {
                let mut all = serde_json::Map::new();
                all.insert(uuid.clone(), local);
                read(core, |d| {
                    for (id, c) in &d.clusters {
                        all.insert(
                            id.clone(),
                            json!({"id": id, "alias": c.alias, "urls": c.urls}),
                        );
                    }
                    Ok(())
                })?;
                return json_ok(&json!({ "clusters": all }));
            }
            if name == uuid || name == "local" {
                return json_ok(&json!({"clusters": {uuid.clone(): local}}));
            }
            let found = read(core, |d| {
                Ok(find_cluster(d, &name).map(|(id, c)| (id.clone(), c.clone())))
            })?;
            match found {
                Some((id, c)) => json_ok(&json!({"clusters": {id.clone(): {
                    "id": id, "alias": c.alias, "urls": c.urls}}})),
                None => Err(ApiError::NotFound(format!(
                    "cluster \"{name}\" is not registered (this cluster is \"{uuid}\", alias \"local\")"
                ))),
            }
        }
        ("clusters", Method::POST, true) => {
            need_admin(&caller)?;
            let v = body_json(body).await?;
            reject_fields(&v, &["id", "alias", "urls"])?;
            let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let (id, alias) = (text("id"), text("alias"));
            let urls: Vec<String> =
                serde_json::from_value(v.get("urls").cloned().unwrap_or_default())
                    .map_err(|_| ApiError::bad_request("\"urls\" must be a list of URLs"))?;
            check_reg(&id, &alias, &urls)?;
            let uuid = core.meta.cluster_uuid();
            if id == uuid || id == "local" || alias == "local" || alias == uuid {
                return Err(ApiError::Conflict(format!(
                    "cluster \"{id}\" (alias \"{alias}\"): this cluster is registered already, as \"local\""
                )));
            }
            update(primary, |d| {
                if d.clusters.contains_key(&id) {
                    return Err(ApiError::Conflict(format!(
                        "cluster \"{id}\" is registered already"
                    )));
                }
                if find_cluster(d, &id).is_some()
                    || (!alias.is_empty() && find_cluster(d, &alias).is_some())
                {
                    return Err(ApiError::Conflict(format!(
                        "alias \"{alias}\" names another registered cluster"
                    )));
                }
                if d.clusters.len() >= MAX_CLUSTERS {
                    return Err(ApiError::bad_request(format!(
                        "at most {MAX_CLUSTERS} clusters can be registered"
                    )));
                }
                d.clusters.insert(id.clone(), ClusterReg { alias, urls });
                Ok(())
            })
            .await?;
            Ok(empty(StatusCode::OK))
        }
        ("clusters", Method::PUT, false) => {
            need_admin(&caller)?;
            let v = body_json(body).await?;
            reject_fields(&v, &["id", "alias", "urls"])?;
            let uuid = core.meta.cluster_uuid();
            if name == uuid || name == "local" {
                return Err(ApiError::bad_request(
                    "this cluster's registration (\"local\") is built in and cannot be changed",
                ));
            }
            update(primary, |d| {
                let id = registered_id(d, &name)?;
                let mut next = d.clusters.get(&id).cloned().unwrap_or_default();
                if let Some(a) = v
                    .get("alias")
                    .and_then(Value::as_str)
                    .filter(|a| !a.is_empty())
                {
                    if a == "local"
                        || a == uuid
                        || find_cluster(d, a).is_some_and(|(other, _)| *other != id)
                    {
                        return Err(ApiError::Conflict(format!(
                            "alias \"{a}\" names another cluster"
                        )));
                    }
                    next.alias = a.to_string();
                }
                if let Some(u) = v.get("urls").filter(|u| !u.is_null()) {
                    next.urls = serde_json::from_value(u.clone())
                        .map_err(|_| ApiError::bad_request("\"urls\" must be a list of URLs"))?;
                }
                check_reg(&id, &next.alias, &next.urls)?;
                d.clusters.insert(id, next);
                Ok(())
            })
            .await?;
            Ok(empty(StatusCode::OK))
        }
        ("clusters", Method::DELETE, false) => {
            need_admin(&caller)?;
            let uuid = core.meta.cluster_uuid();
            if name == uuid || name == "local" {
                return Err(ApiError::bad_request(
                    "this cluster's registration (\"local\") is built in and cannot be removed",
                ));
            }
            update(primary, |d| {
                let id = registered_id(d, &name)?;
                d.clusters.remove(&id);
                Ok(())
            })
            .await?;
            Ok(empty(StatusCode::OK))
        }
        _ => Err(ctx.not_allowed()),
    }
}

fn user_not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!("user \"{name}\" does not exist"))
}

fn role_not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!("role \"{name}\" does not exist"))
}

async fn login(
    core: &NodeCore,
    primary: Option<&Primary>,
    cred: &Cred,
    ctx: &Ctx,
    name: &str,
    body: Body,
) -> Res {
    let uuid = &core.meta.cluster_uuid();
    let client = ctx.remote.ip().to_string();
    throttle::check(name, &client)?;
    let v = body_json(body).await?;
    let pw = v.get("password").and_then(Value::as_str).unwrap_or("");
    // expires_in: nanoseconds (AIStore's time.Duration), 0/absent = default;
    // never past the operator's maximum.
    let max = cred::max_token_ttl_s();
    let ttl_s = v
        .get("expires_in")
        .and_then(Value::as_f64)
        .filter(|n| *n > 0.0)
        .map(|ns| ((ns / 1e9).ceil() as u64).max(1))
        .unwrap_or(cred::DEFAULT_TOKEN_TTL_S)
        .min(max);
    // The password is checked (slowly, on purpose) against this proxy's
    // copy; the token is then built under a read barrier: no AuthN change
    // in flight, this proxy still leading, the database as committed. A
    // user deleted, a password or the roles changed a moment ago never get
    // a token that outlives the change.
    let verified = read(core, |d| {
        Ok(d.users
            .get(name)
            .filter(|u| cred::verify_password(pw, &u.pass_hash))
            .map(|u| u.pass_hash.clone()))
    })?;
    let claims = match (verified, primary) {
        (Some(hash), Some(pr)) => {
            pr.read_barrier(|meta| {
                let d = load(meta)?;
                let cutoff = d
                    .revoked
                    .iter()
                    .filter(|r| r.user == name)
                    .map(|r| r.before_ms)
                    .max()
                    .unwrap_or(0)
                    .max(cred.user_cutoff(name));
                Ok::<_, ApiError>(
                    d.users
                        .get(name)
                        .filter(|u| u.pass_hash == hash)
                        .map(|u| claims_for(&d, u, ttl_s, cutoff, uuid)),
                )
            })
            .await??
        }
        (Some(_), None) => {
            return Err(ApiError::unavailable(
                "this proxy is not the primary (any more): log in again",
            ))
        }
        (None, _) => None,
    };
    let Some(claims) = claims else {
        throttle::failed(name, &client);
        tracing::info!(user = %name, client = %client, "auth: failed login");
        return Err(ApiError::Unauthorized(format!(
            "invalid credentials for user \"{name}\""
        )));
    };
    throttle::succeeded(name, &client);
    tracing::info!(user = %name, "auth: login");
    json_ok(&json!({"token": cred.sign_jwt(&claims)}))
}

/// Failed logins: after [`throttle::FREE`] failures in a row of one user
/// from one client, or [`throttle::FREE_WIDE`] of one user from anywhere or
/// of one client for any users, each further try waits (1 s, doubling up to
/// [`throttle::MAX_WAIT`]) and is answered 429 with `Retry-After` before the
/// password is even looked at. Clients are addresses (IPv6: their /64).
mod throttle {
    use crate::error::{ApiError, ApiResult};
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    pub const FREE: u32 = 5;
    pub const FREE_WIDE: u32 = 20;
    pub const MAX_WAIT: Duration = Duration::from_secs(60);
    /// Entries kept at most (failed tries from many addresses): when full,
    /// unlocked ones go first and no counter that locks is ever dropped.
    const MAX_ENTRIES: usize = 100_000;
    /// A quiet quarter of an hour starts a count again.
    const QUIET: Duration = Duration::from_secs(900);

    struct Entry {
        fails: u32,
        until: Instant,
        last: Instant,
    }

    static FAILS: Mutex<Option<HashMap<String, Entry>>> = Mutex::new(None);

    /// The client part of a key: an IPv4 address, or an IPv6 /64 (one
    /// host commonly holds a whole /64).
    fn client_key(client: &str) -> String {
        match client.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(a)) => {
                let s = a.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            _ => client.to_string(),
        }
    }

    /// (key, failures allowed before it locks).
    fn keys(user: &str, client: &str) -> [(String, u32); 3] {
        let c = client_key(client);
        [
            (format!("uc:{user}|{c}"), FREE),
            (format!("u:{user}"), FREE_WIDE),
            (format!("c:{c}"), FREE_WIDE),
        ]
    }

    pub fn check(user: &str, client: &str) -> ApiResult<()> {
        let Ok(mut g) = FAILS.lock() else {
            return Ok(());
        };
        let m = g.get_or_insert_with(HashMap::new);
        let now = Instant::now();
        for (k, _) in keys(user, client) {
            if let Some(e) = m.get(&k).filter(|e| e.until > now) {
                let wait = (e.until - now).as_secs().max(1);
                let who = match k.split_once(':').map(|x| x.0) {
                    Some("u") => format!("user \"{user}\""),
                    Some("c") => format!("client {client}"),
                    _ => format!("user \"{user}\" from {client}"),
                };
                return Err(ApiError::TooManyRequests {
                    msg: format!("too many failed logins for {who}: retry in {wait} s"),
                    retry_after_s: wait,
                });
            }
        }
        Ok(())
    }

    pub fn failed(user: &str, client: &str) {
        let Ok(mut g) = FAILS.lock() else { return };
        let m = g.get_or_insert_with(HashMap::new);
        let now = Instant::now();
        if m.len() >= MAX_ENTRIES {
            m.retain(|_, e| e.until > now || now.duration_since(e.last) < QUIET);
            if m.len() >= MAX_ENTRIES {
                m.retain(|_, e| e.until > now);
            }
        }
        for (k, free) in keys(user, client) {
            if !m.contains_key(&k) && m.len() >= MAX_ENTRIES {
                continue;
            }
            let e = m.entry(k).or_insert(Entry {
                fails: 0,
                until: now,
                last: now,
            });
            if now.duration_since(e.last) > QUIET {
                e.fails = 0;
            }
            e.fails += 1;
            e.last = now;
            if e.fails >= free {
                let wait = Duration::from_secs(1 << (e.fails - free).min(6)).min(MAX_WAIT);
                e.until = now + wait;
            }
        }
    }

    /// A right password clears that user's and that pair's counts (not the
    /// client's: it may be guessing other users' passwords).
    pub fn succeeded(user: &str, client: &str) {
        if let Ok(mut g) = FAILS.lock() {
            if let Some(m) = g.as_mut() {
                for (k, _) in keys(user, client).into_iter().take(2) {
                    m.remove(&k);
                }
            }
        }
    }
}

/// After a join, or when this proxy becomes the primary: pushes the
/// revoked list (if any) to every node a moment later (a joiner is then in
/// the map; a previous primary may have died between a commit and its
/// push).
pub fn push_revoked_soon(core: &NodeCore) {
    if cred::get().is_none() {
        return;
    }
    let (rpc, meta, id) = (core.rpc.clone(), core.meta.clone(), core.id.clone());
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        if let Ok((d, v)) = load_versioned(&meta) {
            if !d.revoked.is_empty() {
                push_revoked(&rpc, &meta, &id, &d.revoked, v).await;
            }
        }
    });
}

/// Revocations one user may hold as single tokens: past it, every token
/// of theirs is voided at once (one entry): a user revoking their own
/// tokens in a loop cannot grow the database without bound.
const MAX_REVOKED_PER_USER: usize = 32;

/// Records the revocation through the control plane and pushes the list
/// to every node.
async fn revoke(core: &NodeCore, primary: Option<&Primary>, cred: &Cred, tok: &str) -> Res {
    let claims = match cred.verify_jwt(tok) {
        Ok(c) => c,
        Err(TokenError::Expired | TokenError::Revoked) => return Ok(empty(StatusCode::OK)),
        Err(e) => return Err(ApiError::bad_request(format!("cannot revoke: {e}"))),
    };
    let id = cred::token_id(tok);
    let user = claims.username.clone();
    update(primary, |d| {
        let now = cred::now_s();
        d.revoked.retain(|r| r.exp >= now);
        if d.revoked.iter().any(|r| r.id == id) {
            return Ok(());
        }
        let held = d
            .revoked
            .iter()
            .filter(|r| r.user.is_empty() && r.owner == user)
            .count();
        if held >= MAX_REVOKED_PER_USER {
            d.revoked
                .retain(|r| !(r.user.is_empty() && r.owner == user));
            void_user_tokens(d, std::slice::from_ref(&user));
        } else {
            d.revoked.push(Revoked {
                id,
                exp: claims.exp,
                owner: user.clone(),
                ..Default::default()
            });
        }
        Ok(())
    })
    .await?;
    publish_revoked(core, cred).await;
    Ok(empty(StatusCode::OK))
}

/// Voids every token `users` hold now (a user deleted, its roles or
/// password changed, a role it has changed), in the change that does it.
fn void_user_tokens(d: &mut Data, users: &[String]) {
    if users.is_empty() {
        return;
    }
    let before_ms = cred::now_ms() + 1;
    // Every token they hold expires within the longest lifetime.
    let now = cred::now_s();
    let exp = now + cred::max_token_ttl_s() + 60;
    d.revoked
        .retain(|r| r.exp >= now && !users.contains(&r.user));
    d.revoked.extend(users.iter().map(|u| Revoked {
        id: format!("user:{u}"),
        exp,
        user: u.clone(),
        before_ms,
        ..Default::default()
    }));
}

/// Makes the committed revoked set (this proxy's copy, as new as the
/// change just made or newer) the set here and on every node; versioned,
/// so a list pushed late never replaces a newer one.
async fn publish_revoked(core: &NodeCore, cred: &Cred) {
    let Ok((d, v)) = load_versioned(&core.meta) else {
        return;
    };
    cred.set_revoked_at(&d.revoked, v);
    push_revoked(&core.rpc, &core.meta, &core.id, &d.revoked, v).await;
}

async fn push_revoked(rpc: &Rpc, meta: &MetaStore, self_id: &str, list: &[Revoked], version: u64) {
    let nodes: Vec<_> = meta
        .smap()
        .map(|s| {
            s.tmap
                .values()
                .chain(s.pmap.values())
                .filter(|n| n.daemon_id != self_id)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    for (node, res) in fan_out(&nodes, CONTROL_TIMEOUT, |dest| async move {
        rpc.auth_revoked(&dest, list, version).await
    })
    .await
    {
        if let Err(e) = res {
            tracing::warn!(node = %node.name(), error = %e, "auth: revoked-token push failed");
        }
    }
}
