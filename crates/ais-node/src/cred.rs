//! Credentials when auth is on (`AIS_AUTH=1`, `AIS_AUTH_SECRET` shared by
//! every node): HS256 JWTs for users, the intra-cluster credential that
//! `rpc::Rpc` sends on every call, the short-lived signed credential a node
//! adds to the `Location` of its redirects (clients such as Python's requests
//! drop `Authorization` on a redirect to another host:port), salted password
//! hashes, and this node's set of revoked tokens.
//!
//! A leaf module: `http::render` and `rpc` use it; it imports no other module
//! of the node but the leaf `secrets`. Auth off = [`get`] is `None` and nothing here runs.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

type HmacSha = Hmac<Sha256>;

/// Header carrying the intra-cluster credential.
pub const CLUSTER_HDR: &str = "ais-cluster-auth";
/// Query parameter carrying a redirect credential (`EXPIRY.SIGNATURE`).
pub const REDIRECT_PARAM: &str = "ais_auth";
/// Query parameter naming the user token a redirected request was
/// authorized with (`ISSUED_MS.TOKEN_ID.USER`, signed with the query): the
/// serving node refuses the redirect once that token or its user is revoked.
pub const TOKEN_PARAM: &str = "ais_tok";
/// How long a redirect credential is valid.
pub const REDIRECT_TTL_S: u64 = 60;
/// Default token lifetime (AIStore's AuthN default is 24 h).
pub const DEFAULT_TOKEN_TTL_S: u64 = 24 * 3600;

/// What a user token says (signed; checked by every node without a lookup).
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Claims {
    pub username: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    #[serde(default)]
    pub iat: u64,
    /// Issue time in milliseconds: a user's tokens issued before a change
    /// of the user (deleted, roles or password changed) are refused.
    #[serde(default)]
    pub iat_ms: u64,
    /// Random id: two logins in the same second get different tokens (and
    /// revoking one does not revoke the other).
    #[serde(default)]
    pub jti: String,
    #[serde(default)]
    pub admin: bool,
    #[serde(default)]
    pub roles: Vec<String>,
    /// AIStore access bits granted on the whole cluster (every bucket).
    #[serde(default)]
    pub cluster_perm: u64,
    /// Extra bits on named buckets.
    #[serde(default)]
    pub buckets: Vec<BucketPerm>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BucketPerm {
    pub bucket: String,
    pub perm: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("invalid token: malformed JWT")]
    Malformed,
    #[error("invalid token: bad signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token revoked")]
    Revoked,
}

pub struct Cred {
    secret: Vec<u8>,
    cluster_token: String,
    /// Revoked token ids (sha256 of the token) -> their expiry.
    revoked: RwLock<HashMap<String, u64>>,
    /// Users whose tokens issued before a time are void (user -> (ms, expiry)).
    user_cutoffs: RwLock<HashMap<String, (u64, u64)>>,
    /// The AuthN database version the revoked set came from (0: unknown):
    /// an older list pushed late never replaces a newer one.
    revoked_version: std::sync::Mutex<u64>,
}

static CRED: OnceLock<Option<Cred>> = OnceLock::new();

/// The AuthN database version a pushed revoked list comes from.
pub const REVOKED_VERSION_HDR: &str = "ais-authn-version";

/// Reads `AIS_AUTH`/`AIS_AUTH_SECRET` once (the first call wins).
pub fn init_from_env() -> anyhow::Result<()> {
    let on = std::env::var("AIS_AUTH")
        .map(|v| matches!(v.as_str(), "1" | "true" | "yes" | "on"))
        .unwrap_or(false);
    let cred = if on {
        let secret = crate::secrets::get("AIS_AUTH_SECRET").unwrap_or_default();
        if secret.len() < 8 {
            anyhow::bail!(
                "AIS_AUTH=1 needs AIS_AUTH_SECRET (at least 8 characters, the same on every node)"
            );
        }
        Some(Cred::new(secret.as_bytes()))
    } else {
        None
    };
    let _ = CRED.set(cred);
    Ok(())
}

/// Default headers of the intra-cluster client: the cluster credential.
pub fn rpc_headers() -> reqwest::header::HeaderMap {
    let mut h = reqwest::header::HeaderMap::new();
    if let Some(v) =
        get().and_then(|c| reqwest::header::HeaderValue::from_str(c.cluster_token()).ok())
    {
        h.insert(CLUSTER_HDR, v);
    }
    h
}

/// The credentials, when auth is on.
pub fn get() -> Option<&'static Cred> {
    CRED.get().and_then(|c| c.as_ref())
}

pub fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Query parameter carrying the SHA-256 (hex) of a redirected request's
/// body when the body selects data (Get-Batch): signed with the query.
pub const BODY_PARAM: &str = "ais_body";

/// The hex SHA-256 that [`BODY_PARAM`] carries for `body`.
pub fn body_digest(body: &[u8]) -> String {
    hex(&Sha256::digest(body))
}

/// `raw` decoded into pairs and encoded again one way: what a redirect
/// credential signs (unparsable input signs as itself).
pub fn canonical_query(raw: &str) -> String {
    serde_urlencoded::from_str::<Vec<(String, String)>>(raw)
        .ok()
        .and_then(|pairs| serde_urlencoded::to_string(pairs).ok())
        .unwrap_or_else(|| raw.to_string())
}

/// A redirected request's raw query split into the part its credential
/// signs and the credential, which must be the last parameter
/// (`...&ais_auth=EXP.SIG`); `None` when there is none.
pub fn split_redirect(raw: &str) -> Option<(&str, &str)> {
    let key = "ais_auth=";
    let at = raw.rfind(key)?;
    let (signed, v) = (&raw[..at], &raw[at + key.len()..]);
    let signed = match signed {
        "" => "",
        s => s.strip_suffix('&')?,
    };
    if v.contains('&') || v.is_empty() {
        return None;
    }
    Some((signed, v))
}

/// When a token was issued, in ms (older tokens carry seconds only).
fn issued_ms(c: &Claims) -> u64 {
    if c.iat_ms > 0 {
        c.iat_ms
    } else {
        c.iat.saturating_mul(1000)
    }
}

/// The bearer token of a request's `Authorization` header.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let t = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))?
        .trim();
    (!t.is_empty()).then_some(t)
}

/// Id of a token in the revoked list (its SHA-256, hex).
pub fn token_id(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Cred {
    pub fn new(secret: &[u8]) -> Self {
        let mut c = Cred {
            secret: secret.to_vec(),
            cluster_token: String::new(),
            revoked: RwLock::new(HashMap::new()),
            revoked_version: Default::default(),
            user_cutoffs: RwLock::new(HashMap::new()),
        };
        c.cluster_token = B64.encode(c.mac(&[b"ais-intra-cluster-v1"]));
        c
    }

    fn mac(&self, parts: &[&[u8]]) -> Vec<u8> {
        // HMAC accepts keys of any length: this cannot fail.
        let mut m = match HmacSha::new_from_slice(&self.secret) {
            Ok(m) => m,
            Err(_) => return Vec::new(),
        };
        for p in parts {
            m.update(p);
            m.update(b"\n");
        }
        m.finalize().into_bytes().to_vec()
    }

    /// The intra-cluster credential every `Rpc` request carries.
    pub fn cluster_token(&self) -> &str {
        &self.cluster_token
    }

    pub fn check_cluster(&self, v: &str) -> bool {
        ct_eq(v.as_bytes(), self.cluster_token.as_bytes())
    }

    /// `EXPIRY.SIG` for a redirected request (valid [`REDIRECT_TTL_S`]):
    /// bound to its method, path and the whole query before the credential
    /// (so no parameter can be added, dropped or changed; for a request
    /// whose body selects data the query carries the body's SHA-256 in
    /// [`BODY_PARAM`]): it authorizes exactly the request the node
    /// authorized. The query is signed in a canonical form (decoded pairs,
    /// re-encoded), so a client re-quoting the `Location` does not break it.
    pub fn sign_redirect(&self, method: &str, path: &str, query: &str) -> String {
        let exp = (now_s() + REDIRECT_TTL_S).to_string();
        let sig = self.redirect_mac(method, path, query, &exp);
        format!("{exp}.{}", B64.encode(sig))
    }

    fn redirect_mac(&self, method: &str, path: &str, query: &str, exp: &str) -> Vec<u8> {
        self.mac(&[
            b"redirect-v2",
            method.as_bytes(),
            path.as_bytes(),
            canonical_query(query).as_bytes(),
            exp.as_bytes(),
        ])
    }

    /// Whether `v` is a live credential for exactly this request (see
    /// [`Cred::sign_redirect`]); a body digest in the query is the caller's
    /// to compare ([`body_digest`]).
    pub fn check_redirect(&self, method: &str, path: &str, query: &str, v: &str) -> bool {
        let Some((exp, sig)) = v.split_once('.') else {
            return false;
        };
        let Ok(e) = exp.parse::<u64>() else {
            return false;
        };
        if e < now_s() {
            return false;
        }
        let want = self.redirect_mac(method, path, query, exp);
        B64.decode(sig).is_ok_and(|s| ct_eq(&s, &want))
    }

    /// [`TOKEN_PARAM`]'s value for a request authorized by `token` (`None`:
    /// not a live token).
    pub fn token_ref(&self, token: &str) -> Option<String> {
        let c = self.verify_jwt(token).ok()?;
        Some(format!(
            "{}.{}.{}",
            issued_ms(&c),
            token_id(token),
            c.username
        ))
    }

    /// Whether the token a [`TOKEN_PARAM`] names, and its user, are still
    /// good (not revoked since the redirect was signed).
    pub fn token_ref_live(&self, r: &str) -> bool {
        let mut it = r.splitn(3, '.');
        let (Some(ms), Some(id), Some(user)) = (it.next(), it.next(), it.next()) else {
            return false;
        };
        let Ok(ms) = ms.parse::<u64>() else {
            return false;
        };
        !self.is_revoked(id) && self.user_cutoff(user) <= ms
    }

    /// A signed HS256 JWT for `claims`.
    pub fn sign_jwt(&self, claims: &Claims) -> String {
        let header = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let body = B64.encode(serde_json::to_vec(claims).unwrap_or_default());
        let signing_input = format!("{header}.{body}");
        let sig = self.jwt_mac(&signing_input);
        format!("{signing_input}.{}", B64.encode(sig))
    }

    fn jwt_mac(&self, input: &str) -> Vec<u8> {
        match HmacSha::new_from_slice(&self.secret) {
            Ok(mut m) => {
                m.update(input.as_bytes());
                m.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        }
    }

    /// Checks signature, algorithm, expiry and revocation.
    pub fn verify_jwt(&self, token: &str) -> Result<Claims, TokenError> {
        let mut it = token.rsplitn(2, '.');
        let (Some(sig), Some(input)) = (it.next(), it.next()) else {
            return Err(TokenError::Malformed);
        };
        let Some((header, body)) = input.split_once('.') else {
            return Err(TokenError::Malformed);
        };
        let sig = B64.decode(sig).map_err(|_| TokenError::Malformed)?;
        if !ct_eq(&sig, &self.jwt_mac(input)) {
            return Err(TokenError::BadSignature);
        }
        let h: serde_json::Value = B64
            .decode(header)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)?;
        if h.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return Err(TokenError::Malformed);
        }
        let claims: Claims = B64
            .decode(body)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)?;
        if claims.exp <= now_s() {
            return Err(TokenError::Expired);
        }
        // Never longer-lived than the cap (a token issued before the cap
        // was lowered, or before there was one): a user cut-off is kept only
        // that long.
        if claims.exp.saturating_sub(claims.iat) > max_token_ttl_s() + 60 {
            return Err(TokenError::Expired);
        }
        if self.is_revoked(&token_id(token)) {
            return Err(TokenError::Revoked);
        }
        if self.user_cutoff(&claims.username) > issued_ms(&claims) {
            return Err(TokenError::Revoked);
        }
        Ok(claims)
    }

    /// Tokens of `user` issued before this time (ms) are void (0: none).
    pub fn user_cutoff(&self, user: &str) -> u64 {
        self.user_cutoffs
            .read()
            .map(|m| m.get(user).map_or(0, |c| c.0))
            .unwrap_or(u64::MAX)
    }

    pub fn is_revoked(&self, id: &str) -> bool {
        self.revoked
            .read()
            .map(|r| r.contains_key(id))
            .unwrap_or(true)
    }

    /// Replaces the revoked set with that of AuthN database `version`,
    /// unless this node has a newer one already (a push that arrived late).
    /// Version 0: replace regardless.
    pub fn set_revoked_at(&self, list: &[Revoked], version: u64) {
        // Held while the set is replaced: two pushes never interleave.
        let Ok(mut cur) = self.revoked_version.lock() else {
            return;
        };
        if version != 0 && *cur > version {
            return;
        }
        *cur = (*cur).max(version);
        self.set_revoked(list);
    }

    /// Replaces the revoked set (expired entries dropped).
    pub fn set_revoked(&self, list: &[Revoked]) {
        let now = now_s();
        let live = list.iter().filter(|t| t.exp > now);
        if let Ok(mut r) = self.revoked.write() {
            *r = live
                .clone()
                .filter(|t| t.user.is_empty())
                .map(|t| (t.id.clone(), t.exp))
                .collect();
        }
        if let Ok(mut u) = self.user_cutoffs.write() {
            u.clear();
            for t in live.filter(|t| !t.user.is_empty()) {
                let e = u.entry(t.user.clone()).or_insert((0, 0));
                if t.before_ms >= e.0 {
                    *e = (t.before_ms, t.exp);
                }
            }
        }
    }

    pub fn revoked_list(&self) -> Vec<Revoked> {
        let now = now_s();
        let mut out: Vec<Revoked> = self
            .revoked
            .read()
            .map(|r| {
                r.iter()
                    .filter(|(_, e)| **e > now)
                    .map(|(id, exp)| Revoked {
                        id: id.clone(),
                        exp: *exp,
                        ..Default::default()
                    })
                    .collect()
            })
            .unwrap_or_default();
        if let Ok(u) = self.user_cutoffs.read() {
            out.extend(
                u.iter()
                    .filter(|(_, c)| c.1 > now)
                    .map(|(user, c)| Revoked {
                        id: format!("user:{user}"),
                        exp: c.1,
                        user: user.clone(),
                        before_ms: c.0,
                        ..Default::default()
                    }),
            );
        }
        out
    }
}

/// One revoked token (its id, [`token_id`]) or, with `user`, every token
/// of that user issued before `before_ms`; dropped after `exp`, when every
/// such token has expired anyway.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Revoked {
    pub id: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// A revoked token's user (its entry counts against that user's cap).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub before_ms: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The longest lifetime a token gets (`AIS_AUTH_MAX_TOKEN_TTL`: seconds, or
/// with a unit `s`/`m`/`h`/`d`; default 24 h, AIStore's default expiry): a
/// login asking for more gets this.
pub fn max_token_ttl_s() -> u64 {
    static MAX: OnceLock<u64> = OnceLock::new();
    *MAX.get_or_init(|| {
        std::env::var("AIS_AUTH_MAX_TOKEN_TTL")
            .ok()
            .and_then(|v| parse_secs(&v))
            .filter(|s| *s > 0)
            .unwrap_or(DEFAULT_TOKEN_TTL_S)
    })
}

/// `90`, `90s`, `15m`, `24h`, `7d` as seconds.
pub fn parse_secs(v: &str) -> Option<u64> {
    let v = v.trim();
    let (num, mul) = match v.char_indices().last()? {
        (i, 's') => (&v[..i], 1),
        (i, 'm') => (&v[..i], 60),
        (i, 'h') => (&v[..i], 3600),
        (i, 'd') => (&v[..i], 86400),
        _ => (v, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mul)
}

const PBKDF2_ITERS: u32 = 20_000;

/// `pbkdf2-sha256$ITERS$SALT$HASH` (PBKDF2-HMAC-SHA256, 16-byte random salt).
pub fn hash_password(pw: &str) -> String {
    let salt: [u8; 16] = rand::random();
    let h = pbkdf2(pw.as_bytes(), &salt, PBKDF2_ITERS);
    format!(
        "pbkdf2-sha256${PBKDF2_ITERS}${}${}",
        B64.encode(salt),
        B64.encode(h)
    )
}

pub fn verify_password(pw: &str, stored: &str) -> bool {
    let p: Vec<&str> = stored.split('$').collect();
    let [alg, iters, salt, hash] = p[..] else {
        return false;
    };
    let (Ok(iters), Ok(salt), Ok(hash)) =
        (iters.parse::<u32>(), B64.decode(salt), B64.decode(hash))
    else {
        return false;
    };
    alg == "pbkdf2-sha256" && ct_eq(&pbkdf2(pw.as_bytes(), &salt, iters), &hash)
}

/// PBKDF2-HMAC-SHA256, one 32-byte block.
fn pbkdf2(pw: &[u8], salt: &[u8], iters: u32) -> Vec<u8> {
    let Ok(prf) = HmacSha::new_from_slice(pw) else {
        return Vec::new();
    };
    let mut m = prf.clone();
    m.update(salt);
    m.update(&1u32.to_be_bytes());
    let mut u = m.finalize().into_bytes();
    let mut out = u;
    for _ in 1..iters {
        let mut m = prf.clone();
        m.update(&u);
        u = m.finalize().into_bytes();
        for (o, x) in out.iter_mut().zip(u.iter()) {
            *o ^= x;
        }
    }
    out.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_round_trip_expiry_revocation() {
        let c = Cred::new(b"secret-123");
        let claims = Claims {
            username: "u".into(),
            iat: now_s(),
            exp: now_s() + 60,
            ..Default::default()
        };
        let t = c.sign_jwt(&claims);
        assert_eq!(c.verify_jwt(&t).unwrap().username, "u");
        // Longer-lived than the cap (signed before there was one): refused.
        let long = c.sign_jwt(&Claims {
            exp: now_s() + 100 * 365 * 86400,
            ..claims.clone()
        });
        assert_eq!(c.verify_jwt(&long).unwrap_err(), TokenError::Expired);
        let other = Cred::new(b"another-secret");
        assert_eq!(other.verify_jwt(&t).unwrap_err(), TokenError::BadSignature);
        assert_eq!(c.verify_jwt("a.b").unwrap_err(), TokenError::Malformed);
        let old = c.sign_jwt(&Claims {
            exp: now_s() - 1,
            ..claims.clone()
        });
        assert_eq!(c.verify_jwt(&old).unwrap_err(), TokenError::Expired);
        c.set_revoked(&[Revoked {
            id: token_id(&t),
            exp: claims.exp,
            ..Default::default()
        }]);
        assert_eq!(c.verify_jwt(&t).unwrap_err(), TokenError::Revoked);
        // A user cut-off voids that user's earlier tokens only, and
        // survives the round trip through the pushed list.
        let c = Cred::new(b"secret-123");
        let early = c.sign_jwt(&Claims {
            iat_ms: 1_000,
            ..claims.clone()
        });
        let late = c.sign_jwt(&Claims {
            iat_ms: 3_000,
            ..claims.clone()
        });
        let someone = c.sign_jwt(&Claims {
            username: "v".into(),
            iat_ms: 1_000,
            ..claims.clone()
        });
        let cut = Revoked {
            id: "user:u".into(),
            exp: claims.exp,
            user: "u".into(),
            before_ms: 2_000,
            ..Default::default()
        };
        c.set_revoked(std::slice::from_ref(&cut));
        assert_eq!(c.verify_jwt(&early).unwrap_err(), TokenError::Revoked);
        assert!(c.verify_jwt(&late).is_ok() && c.verify_jwt(&someone).is_ok());
        let wire = serde_json::to_vec(&c.revoked_list()).unwrap();
        let back: Vec<Revoked> = serde_json::from_slice(&wire).unwrap();
        assert_eq!(back, vec![cut]);
        // Old-format lists (no user fields) still parse.
        let old: Vec<Revoked> = serde_json::from_str(r#"[{"id":"x","exp":5}]"#).unwrap();
        assert!(old[0].user.is_empty());
        assert_eq!(parse_secs("24h"), Some(86400));
        assert_eq!(parse_secs("90"), Some(90));
        assert_eq!(parse_secs("15m"), Some(900));
        assert_eq!(parse_secs("x"), None);
    }

    #[test]
    fn redirect_and_password() {
        let c = Cred::new(b"secret-123");
        let s = c.sign_redirect("GET", "/v1/objects/b/o", "pid=p");
        assert!(c.check_redirect("GET", "/v1/objects/b/o", "pid=p", &s));
        assert!(!c.check_redirect("PUT", "/v1/objects/b/o", "pid=p", &s));
        assert!(!c.check_redirect("GET", "/v1/objects/b/x", "pid=p", &s));
        // Another query (a parameter added or changed): refused.
        assert!(!c.check_redirect("GET", "/v1/objects/b/o", "pid=p&etl_name=x", &s));
        assert!(!c.check_redirect("GET", "/v1/objects/b/o", "pid=q", &s));
        // The same query quoted another way (a client re-quoting the
        // Location) is the same query.
        let q = c.sign_redirect("GET", "/v1/objects/b/o", "a=%7E&b=x%27y");
        assert!(c.check_redirect("GET", "/v1/objects/b/o", "a=~&b=x'y", &q));
        assert_eq!(body_digest(b"abc").len(), 64);
        assert_eq!(split_redirect("a=1&ais_auth=X.Y"), Some(("a=1", "X.Y")));
        assert_eq!(split_redirect("ais_auth=X.Y"), Some(("", "X.Y")));
        assert_eq!(split_redirect("a=1&ais_auth=X.Y&b=2"), None);
        assert_eq!(split_redirect("a=1&xais_auth=X.Y"), None);
        assert_eq!(split_redirect("a=1"), None);
        let h = hash_password("pw");
        assert!(!h.contains("pw$") && verify_password("pw", &h) && !verify_password("px", &h));
        // RFC 7914 / known PBKDF2-HMAC-SHA256 vector ("password", "salt", 1).
        assert_eq!(
            hex(&pbkdf2(b"password", b"salt", 1)),
            "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"
        );
    }

    #[test]
    fn a_revoked_list_pushed_late_never_replaces_a_newer_one() {
        let c = Cred::new(b"secret-123");
        let claims = Claims {
            username: "u".into(),
            iat: now_s(),
            exp: now_s() + 60,
            ..Default::default()
        };
        let (t1, t2) = (
            c.sign_jwt(&claims),
            c.sign_jwt(&Claims {
                jti: "2".into(),
                ..claims.clone()
            }),
        );
        let rev = |t: &str| Revoked {
            id: token_id(t),
            exp: claims.exp,
            ..Default::default()
        };
        // Version 6 (both revoked) arrives before version 5 (one).
        c.set_revoked_at(&[rev(&t1), rev(&t2)], 6);
        c.set_revoked_at(&[rev(&t1)], 5);
        assert_eq!(c.verify_jwt(&t2).unwrap_err(), TokenError::Revoked);
        c.set_revoked_at(&[rev(&t1)], 7);
        assert!(c.verify_jwt(&t2).is_ok());
        assert_eq!(c.verify_jwt(&t1).unwrap_err(), TokenError::Revoked);
    }
}
