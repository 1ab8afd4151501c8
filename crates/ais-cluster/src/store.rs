//! A node's persisted copy of the cluster metadata: the documents every
//! node gets (cluster map, BMD, EtlMD, config) and the proxies' own
//! replicated documents ([`Doc`]: the AuthN database, the job registry).

use crate::ClusterError;
use ais_core::config::ClusterConfig;
use ais_core::meta::{Bmd, EtlMd, MetaSync, Smap};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// What a [`MetaStore::apply`] call actually changed (old versions, for diffing).
#[derive(Debug, Default)]
pub struct Applied {
    pub smap: Option<Option<Smap>>,
    pub bmd: Option<Bmd>,
    pub etlmd: Option<EtlMd>,
    pub config: Option<ClusterConfig>,
}

#[derive(Debug, Default)]
struct Inner {
    smap: Option<Smap>,
    bmd: Bmd,
    etlmd: EtlMd,
    config: ClusterConfig,
    docs: BTreeMap<String, Doc>,
}

/// A document the proxies replicate among themselves through the control
/// plane and never push to targets (the AuthN database holds password
/// hashes). Its shape is its owner's business; here it is JSON with a
/// version, each in `<meta>/docs/NAME.json` (mode 0600).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Doc {
    pub version: u64,
    pub data: Value,
}

/// One document's new content (`None`: removed) at `version`, which must be
/// the next one of that document (1 for a new one) for the change to apply.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DocChange {
    pub name: String,
    pub version: u64,
    #[serde(default)]
    pub data: Option<Value>,
}

/// One entry of the control plane's log: metadata every node gets, or
/// documents only the proxies keep. The primary never mixes the two in one
/// entry: a joining proxy's store may be ahead of the log for metadata
/// (its first map comes with the join answer) and skips those entries as
/// not newer, but documents reach a proxy through the log alone.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Change {
    #[serde(flatten)]
    pub sync: MetaSync,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub docs: Vec<DocChange>,
}

impl From<MetaSync> for Change {
    fn from(sync: MetaSync) -> Self {
        Change {
            sync,
            docs: Vec::new(),
        }
    }
}

/// Longest document name.
const MAX_DOC_NAME: usize = 200;

/// A document name: words of letters, digits, `-`, `_`, `.` joined by `/`
/// (a collection and a key), never a dot-only word. It names a file.
pub fn valid_doc_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_DOC_NAME
        && name.split('/').all(|w| {
            !w.is_empty()
                && w.bytes().any(|b| b != b'.')
                && w.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
}

fn doc_file(dir: &Path, name: &str) -> PathBuf {
    dir.join("docs")
        .join(format!("{}.json", name.replace('/', "@")))
}

fn load_docs(dir: &Path) -> Result<BTreeMap<String, Doc>, ClusterError> {
    let docs = dir.join("docs");
    let mut out = BTreeMap::new();
    let rd = match std::fs::read_dir(&docs) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => {
            return Err(ClusterError::Io {
                context: format!("read {}", docs.display()),
                source: e,
            })
        }
    };
    for ent in rd.flatten() {
        let file = ent.file_name().to_string_lossy().into_owned();
        let Some(stem) = file.strip_suffix(".json") else {
            continue; // a temp file of an interrupted write
        };
        let name = stem.replace('@', "/");
        if !valid_doc_name(&name) {
            continue;
        }
        if let Some(d) = load::<Doc>(&ent.path())? {
            out.insert(name, d);
        }
    }
    Ok(out)
}

/// Thread-safe, persisted metadata of one node.
#[derive(Debug, Clone)]
pub struct MetaStore {
    dir: PathBuf,
    inner: Arc<RwLock<Inner>>,
}

/// A JSON file's value; `None` when it does not exist.
pub(crate) fn load<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, ClusterError> {
    match std::fs::read(path) {
        Ok(raw) => serde_json::from_slice(&raw)
            .map(Some)
            .map_err(|e| ClusterError::Corrupt {
                path: path.display().to_string(),
                msg: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ClusterError::Io {
            context: format!("read {}", path.display()),
            source: e,
        }),
    }
}

/// Writes `value` to `path` atomically (temp + fsync + rename).
pub fn save_json<T: Serialize>(path: &Path, value: &T) -> Result<(), ClusterError> {
    let raw = serde_json::to_vec_pretty(value).map_err(|e| ClusterError::Io {
        context: "encode".into(),
        source: std::io::Error::other(e),
    })?;
    save_bytes(path, &raw)
}

/// Writes `raw` to `path` atomically (temp + fsync + rename); a failed
/// write leaves no temp file behind.
pub fn save_bytes(path: &Path, raw: &[u8]) -> Result<(), ClusterError> {
    let io = |context: String| move |source| ClusterError::Io { context, source };
    let tmp = path.with_extension("tmp");
    let written = (|| {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        // Owner-only from the start (the AuthN database is among these).
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .map_err(io(format!("create {}", tmp.display())))?;
        f.write_all(raw)
            .map_err(io(format!("write {}", tmp.display())))?;
        f.sync_all().map_err(io(format!("fsync {}", tmp.display())))
    })()
    .and_then(|()| std::fs::rename(&tmp, path).map_err(io(format!("rename {}", path.display()))))
    .and_then(|()| {
        // The rename itself must survive a power loss (a vote or a
        // truncated log reverting would break the control plane's rules).
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(format!("fsync {}", dir.display())))
    });
    if written.is_err() {
        // A full disk must not leave a half-written temp file behind.
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

impl MetaStore {
    pub fn open(dir: &Path) -> Result<Self, ClusterError> {
        std::fs::create_dir_all(dir).map_err(|e| ClusterError::Io {
            context: format!("create {}", dir.display()),
            source: e,
        })?;
        let inner = Inner {
            smap: load(&dir.join("smap.json"))?,
            bmd: load(&dir.join("bmd.json"))?.unwrap_or_default(),
            etlmd: load(&dir.join("etlmd.json"))?.unwrap_or_default(),
            config: load(&dir.join("config.json"))?.unwrap_or_default(),
            docs: load_docs(dir)?,
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            inner: Arc::new(RwLock::new(inner)),
        })
    }

    pub fn smap(&self) -> Option<Smap> {
        self.inner.read().map(|i| i.smap.clone()).unwrap_or(None)
    }
    pub fn bmd(&self) -> Bmd {
        self.inner.read().map(|i| i.bmd.clone()).unwrap_or_default()
    }
    pub fn etlmd(&self) -> EtlMd {
        self.inner
            .read()
            .map(|i| i.etlmd.clone())
            .unwrap_or_default()
    }
    /// The cluster's configuration overrides.
    pub fn config(&self) -> ClusterConfig {
        self.inner
            .read()
            .map(|i| i.config.clone())
            .unwrap_or_default()
    }
    pub fn config_version(&self) -> u64 {
        self.inner.read().map(|i| i.config.version).unwrap_or(0)
    }
    /// Reads without cloning the whole map.
    pub fn with_smap<R>(&self, f: impl FnOnce(Option<&Smap>) -> R) -> R {
        match self.inner.read() {
            Ok(i) => f(i.smap.as_ref()),
            Err(_) => f(None),
        }
    }
    pub fn with_bmd<R>(&self, f: impl FnOnce(&Bmd) -> R) -> R {
        match self.inner.read() {
            Ok(i) => f(&i.bmd),
            Err(p) => f(&p.get_ref().bmd),
        }
    }
    pub fn cluster_uuid(&self) -> String {
        self.with_smap(|s| s.map(|s| s.uuid.clone()).unwrap_or_default())
    }
    pub fn versions(&self) -> (u64, u64, u64) {
        self.inner
            .read()
            .map(|i| {
                (
                    i.smap.as_ref().map(|s| s.version).unwrap_or(0),
                    i.bmd.version,
                    i.etlmd.version,
                )
            })
            .unwrap_or((0, 0, 0))
    }

    /// Applies newer parts of `sync`; older or same versions are ignored, and
    /// metadata of a different cluster is refused outright.
    pub fn apply(&self, sync: &MetaSync) -> Result<Applied, ClusterError> {
        let mut inner = self
            .inner
            .write()
            .map_err(|_| ClusterError::Refused("metadata lock poisoned".into()))?;
        let uuid = inner
            .smap
            .as_ref()
            .map(|s| s.uuid.clone())
            .unwrap_or_default();
        let check = |other: &str, what: &str| {
            if !uuid.is_empty() && !other.is_empty() && other != uuid {
                Err(ClusterError::Refused(format!(
                    "{what} belongs to cluster {other}, this node to cluster {uuid}"
                )))
            } else {
                Ok(())
            }
        };
        if let Some(s) = &sync.smap {
            check(&s.uuid, "cluster map")?;
        }
        if let Some(b) = &sync.bmd {
            check(&b.uuid, "bucket metadata")?;
        }
        if let Some(e) = &sync.etlmd {
            check(&e.uuid, "ETL metadata")?;
        }
        if let Some(c) = &sync.config {
            check(&c.uuid, "cluster configuration")?;
        }
        let mut applied = Applied::default();
        if let Some(s) = &sync.smap {
            let cur = inner.smap.as_ref().map(|s| s.version).unwrap_or(0);
            if s.version > cur {
                save_json(&self.dir.join("smap.json"), s)?;
                applied.smap = Some(inner.smap.replace(s.clone()));
            }
        }
        if let Some(b) = &sync.bmd {
            if b.version > inner.bmd.version {
                save_json(&self.dir.join("bmd.json"), b)?;
                applied.bmd = Some(std::mem::replace(&mut inner.bmd, b.clone()));
            }
        }
        if let Some(e) = &sync.etlmd {
            if e.version > inner.etlmd.version {
                save_json(&self.dir.join("etlmd.json"), e)?;
                applied.etlmd = Some(std::mem::replace(&mut inner.etlmd, e.clone()));
            }
        }
        if let Some(c) = &sync.config {
            if c.version > inner.config.version {
                save_json(&self.dir.join("config.json"), c)?;
                applied.config = Some(std::mem::replace(&mut inner.config, c.clone()));
            }
        }
        Ok(applied)
    }

    /// The replicated document `name`, if there is one.
    pub fn doc(&self, name: &str) -> Option<Doc> {
        self.inner
            .read()
            .ok()
            .and_then(|i| i.docs.get(name).cloned())
    }

    /// The documents whose names start with `prefix`, by name.
    pub fn docs_under(&self, prefix: &str) -> Vec<(String, Doc)> {
        self.inner
            .read()
            .map(|i| {
                i.docs
                    .range(prefix.to_string()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .map(|(k, d)| (k.clone(), d.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every replicated document (a control-plane snapshot).
    pub fn docs(&self) -> BTreeMap<String, Doc> {
        self.inner
            .read()
            .map(|i| i.docs.clone())
            .unwrap_or_default()
    }

    /// `data` (`None`: removal) as the next version of document `name`.
    pub fn next_doc(&self, name: &str, data: Option<Value>) -> DocChange {
        let cur = self.doc(name).map_or(0, |d| d.version);
        DocChange {
            name: name.to_string(),
            version: cur + 1,
            data,
        }
    }

    /// Whether every change is the next version of its document, or that
    /// very change already applied (a replay after a crash): the same rule
    /// as for the other documents, so that two changes built on one state
    /// never both apply.
    pub fn docs_fit(&self, changes: &[DocChange]) -> bool {
        let Ok(i) = self.inner.read() else {
            return false;
        };
        changes.iter().all(|c| {
            if !valid_doc_name(&c.name) {
                return false;
            }
            match (i.docs.get(&c.name), &c.data) {
                (None, None) => true, // removed already
                (None, Some(_)) => c.version == 1,
                (Some(d), data) => {
                    c.version == d.version + 1
                        || (c.version == d.version && data.as_ref() == Some(&d.data))
                }
            }
        })
    }

    /// Applies document changes that [`MetaStore::docs_fit`] accepted.
    /// Files are written before the in-memory copy changes, without the
    /// lock readers take (only the control plane's state machine writes,
    /// one entry at a time).
    pub fn apply_docs(&self, changes: &[DocChange]) -> Result<(), ClusterError> {
        if let Some(c) = changes.iter().find(|c| !valid_doc_name(&c.name)) {
            return Err(ClusterError::Refused(format!(
                "\"{}\" is not a valid document name",
                c.name
            )));
        }
        let docs_dir = self.dir.join("docs");
        for c in changes {
            let file = doc_file(&self.dir, &c.name);
            match &c.data {
                Some(data) => {
                    let doc = Doc {
                        version: c.version,
                        data: data.clone(),
                    };
                    let same = self
                        .inner
                        .read()
                        .map(|i| i.docs.get(&c.name) == Some(&doc))
                        .unwrap_or(false);
                    if same {
                        continue;
                    }
                    std::fs::create_dir_all(&docs_dir).map_err(|e| ClusterError::Io {
                        context: format!("create {}", docs_dir.display()),
                        source: e,
                    })?;
                    save_json(&file, &doc)?;
                }
                None => match std::fs::remove_file(&file) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(ClusterError::Io {
                            context: format!("remove {}", file.display()),
                            source: e,
                        })
                    }
                },
            }
        }
        let mut inner = self
            .inner
            .write()
            .map_err(|_| ClusterError::Refused("metadata lock poisoned".into()))?;
        for c in changes {
            match &c.data {
                Some(data) => {
                    inner.docs.insert(
                        c.name.clone(),
                        Doc {
                            version: c.version,
                            data: data.clone(),
                        },
                    );
                }
                None => {
                    inner.docs.remove(&c.name);
                }
            }
        }
        Ok(())
    }

    /// Makes `docs` this node's documents (a control-plane snapshot):
    /// those it does not name are removed.
    pub fn replace_docs(&self, docs: &BTreeMap<String, Doc>) -> Result<(), ClusterError> {
        let gone: Vec<DocChange> = self
            .docs()
            .into_keys()
            .filter(|k| !docs.contains_key(k))
            .map(|name| DocChange {
                name,
                version: 0,
                data: None,
            })
            .collect();
        self.apply_docs(&gone)?;
        let set: Vec<DocChange> = docs
            .iter()
            .filter(|(k, _)| valid_doc_name(k))
            .map(|(k, d)| DocChange {
                name: k.clone(),
                version: d.version,
                data: Some(d.data.clone()),
            })
            .collect();
        self.apply_docs(&set)
    }

    /// Everything this node has, for pushing to a node that lags.
    pub fn newer_than(&self, smap_v: u64, bmd_v: u64, etlmd_v: u64, config_v: u64) -> MetaSync {
        let Ok(i) = self.inner.read() else {
            return MetaSync::default();
        };
        MetaSync {
            smap: i.smap.clone().filter(|s| s.version > smap_v),
            bmd: Some(i.bmd.clone()).filter(|b| b.version > bmd_v),
            etlmd: Some(i.etlmd.clone()).filter(|e| e.version > etlmd_v),
            config: Some(i.config.clone()).filter(|c| c.version > config_v),
        }
    }

    pub fn full(&self) -> MetaSync {
        self.newer_than(0, 0, 0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ais_core::meta::{NodeType, Snode};
    use std::collections::BTreeMap;

    fn smap(v: u64, uuid: &str) -> Smap {
        let p = Snode::new("p1", NodeType::Proxy, "127.0.0.1", 1);
        Smap {
            version: v,
            uuid: uuid.into(),
            creation_time: String::new(),
            tmap: BTreeMap::new(),
            pmap: BTreeMap::new(),
            proxy_si: p,
        }
    }

    #[test]
    fn refuses_older_and_foreign_and_persists() {
        let d = tempfile::tempdir().unwrap();
        let m = MetaStore::open(d.path()).unwrap();
        let s5 = MetaSync {
            smap: Some(smap(5, "u1")),
            ..Default::default()
        };
        assert!(m.apply(&s5).unwrap().smap.is_some());
        let s4 = MetaSync {
            smap: Some(smap(4, "u1")),
            ..Default::default()
        };
        assert!(m.apply(&s4).unwrap().smap.is_none());
        assert_eq!(m.versions().0, 5);
        let foreign = MetaSync {
            smap: Some(smap(9, "u2")),
            ..Default::default()
        };
        assert!(matches!(m.apply(&foreign), Err(ClusterError::Refused(_))));
        let reopened = MetaStore::open(d.path()).unwrap();
        assert_eq!(reopened.versions().0, 5);
    }

    #[test]
    fn documents_take_the_next_version_only_and_persist_privately() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let m = MetaStore::open(d.path()).unwrap();
        let a1 = m.next_doc("jobs/a", Some(serde_json::json!({"n": 1})));
        assert_eq!(a1.version, 1);
        assert!(m.docs_fit(std::slice::from_ref(&a1)));
        m.apply_docs(std::slice::from_ref(&a1)).unwrap();
        // The same change again (a replay): fits, changes nothing.
        assert!(m.docs_fit(std::slice::from_ref(&a1)));
        // Another change built on the same state: refused.
        let other = DocChange {
            data: Some(serde_json::json!({"n": 9})),
            ..a1.clone()
        };
        assert!(!m.docs_fit(&[other]));
        // A gap: refused; the next version: fits.
        let gap = DocChange {
            version: 3,
            ..a1.clone()
        };
        assert!(!m.docs_fit(&[gap]));
        let a2 = m.next_doc("jobs/a", Some(serde_json::json!({"n": 2})));
        assert!(m.docs_fit(std::slice::from_ref(&a2)));
        m.apply_docs(&[a2, m.next_doc("authn", Some(serde_json::json!({})))])
            .unwrap();
        // Bad names never apply (they name files).
        for bad in ["", "../x", "a/../b", "a//b", "a b", ".", "jobs/.."] {
            assert!(!valid_doc_name(bad), "{bad}");
            let c = DocChange {
                name: bad.into(),
                version: 1,
                data: Some(Value::Null),
            };
            assert!(!m.docs_fit(std::slice::from_ref(&c)), "{bad}");
            assert!(m.apply_docs(&[c]).is_err(), "{bad}");
        }
        let file = d.path().join("docs/jobs@a.json");
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let reopened = MetaStore::open(d.path()).unwrap();
        assert_eq!(reopened.doc("jobs/a").unwrap().version, 2);
        assert_eq!(reopened.docs_under("jobs/").len(), 1);
        // Removal, then a snapshot that names other documents.
        reopened
            .apply_docs(&[reopened.next_doc("jobs/a", None)])
            .unwrap();
        assert!(!file.exists() && reopened.doc("jobs/a").is_none());
        let snap = BTreeMap::from([(
            "jobs/b".to_string(),
            Doc {
                version: 7,
                data: serde_json::json!(1),
            },
        )]);
        reopened.replace_docs(&snap).unwrap();
        assert_eq!(reopened.docs(), snap);
        assert_eq!(MetaStore::open(d.path()).unwrap().docs(), snap);
    }
}
