//! A node's persisted copy of the cluster metadata.

use crate::ClusterError;
use ais_core::config::ClusterConfig;
use ais_core::meta::{Bmd, EtlMd, MetaSync, Smap};
use serde::{de::DeserializeOwned, Serialize};
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
        let mut f = std::fs::File::create(&tmp).map_err(io(format!("create {}", tmp.display())))?;
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
}
