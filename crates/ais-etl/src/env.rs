//! Python interpreters and dependency environments. An environment is built
//! once per host per (interpreter, requirements) hash under a shared cache
//! directory, guarded by a file lock so targets on the same host that init at
//! once build it once; later inits, other ETLs and restarts reuse it.
//!
//! Environments are venvs that also see the base interpreter's packages
//! (through a `.pth` file), so what the host already has is not downloaded
//! again; what the requirements add lives only in the environment.
//!
//! An install runs packages' build scripts: user code. It runs in the ETL
//! sandbox ([`Builder`]) under an identity of its own, in a fresh staging
//! directory, with the host network only where ETLs may have it (auth on,
//! or `AIS_ETL_ALLOW_HOST_NETWORK=1`). When it is over (every process of
//! it killed), the node copies the venv out of the staging directory
//! without following anything planted there ([`crate::untrusted`]): the
//! environment ETLs run with is the node's, read-only to all of them.

use crate::logs::LogSink;
use crate::EtlError;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Where a dependency install runs: the ETL host's sandbox, as `ids`.
pub struct Builder {
    pub host: Arc<crate::sandbox::Host>,
    /// The install's own uid/gid (`None`: the node's, when it is not root).
    pub ids: Option<(u32, u32)>,
    pub tracker: crate::procs::Tracker,
    /// What it must read: the interpreter's directories.
    pub ro: Vec<PathBuf>,
    /// The host network (to reach a package index); else loopback only.
    pub network: bool,
    /// How long the install may take (the ETL's init timeout).
    pub timeout: std::time::Duration,
    /// `ids` is the install's alone (not a uid shared with ETLs): whatever
    /// still runs under it when the install is over is killed.
    pub own_uid: bool,
}

/// Exit codes of [`BUILD_SCRIPT`] for its steps.
const EXIT_VENV: i32 = 3;
const EXIT_PIP: i32 = 4;

#[derive(Debug, Clone)]
pub struct Python {
    pub exe: String,
    /// e.g. "3.11.7"
    pub version: String,
    /// e.g. "3.11"
    pub minor: String,
}

pub struct EnvManager {
    cache: PathBuf,
    default_python: String,
}

async fn probe(exe: &str) -> Option<Python> {
    let out = tokio::process::Command::new(exe)
        .args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
        .stdin(Stdio::null())
        .output()
        .await
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let minor = version.splitn(3, '.').take(2).collect::<Vec<_>>().join(".");
    Some(Python {
        exe: exe.to_string(),
        version,
        minor,
    })
}

/// `python3.N` executables on PATH.
fn installed_minors() -> Vec<String> {
    let mut out = Vec::new();
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().to_string();
                if let Some(m) = n.strip_prefix("python3.") {
                    if !m.is_empty() && m.chars().all(|c| c.is_ascii_digit()) && !out.contains(&n) {
                        out.push(n);
                    }
                }
            }
        }
    }
    out.sort();
    out
}

impl EnvManager {
    pub fn new(cache: PathBuf, default_python: Option<String>) -> Self {
        Self {
            cache,
            default_python: default_python.unwrap_or_else(|| "python3".into()),
        }
    }

    /// Directories the default interpreter needs readable (see `python_dirs`).
    pub fn default_python_dirs(&self) -> Option<Vec<PathBuf>> {
        Some(crate::python_dirs(&self.default_python))
    }

    /// Resolves a runtime name (`python3` or `python3.N`) to an interpreter.
    pub async fn resolve(&self, runtime: &str) -> Result<Python, EtlError> {
        let default = probe(&self.default_python).await;
        if runtime == "python3" {
            return default.ok_or_else(|| {
                EtlError::Init(format!(
                    "runtime python3: interpreter \"{}\" not found or not working (set AIS_PYTHON or --python)",
                    self.default_python
                ))
            });
        }
        let want = runtime.trim_start_matches("python");
        if let Some(d) = default.as_ref().filter(|d| d.minor == want) {
            return Ok(d.clone());
        }
        if let Some(p) = probe(runtime).await.filter(|p| p.minor == want) {
            return Ok(p);
        }
        let mut avail: Vec<String> = installed_minors();
        if let Some(d) = &default {
            avail.insert(0, format!("python3 (= Python {})", d.minor));
        }
        Err(EtlError::Init(format!(
            "runtime \"{runtime}\" is not installed on this host; available: {}",
            if avail.is_empty() {
                "none".into()
            } else {
                avail.join(", ")
            }
        )))
    }

    /// Returns the interpreter to run workers with: the base one when there
    /// are no requirements, else the (possibly freshly built) environment's.
    pub async fn ensure(
        &self,
        py: &Python,
        deps: &str,
        log: &LogSink,
        builder: &Builder,
    ) -> Result<String, EtlError> {
        let reqs: Vec<&str> = deps
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        if reqs.is_empty() {
            return Ok(py.exe.clone());
        }
        let key = format!(
            "{:016x}",
            xxhash_rust::xxh64::xxh64(
                format!("{}\n{}\n{}", py.exe, py.version, reqs.join("\n")).as_bytes(),
                0
            )
        );
        let dir = self.cache.join(format!("py{}-{key}", py.minor));
        let env_py = dir.join("bin").join("python");
        let ready = dir.join(".ready");
        if ready.exists() {
            log.line(&format!("using cached environment {}", dir.display()));
            return Ok(env_py.display().to_string());
        }
        std::fs::create_dir_all(&self.cache)
            .map_err(|e| EtlError::Init(format!("create {}: {e}", self.cache.display())))?;
        let lock_path = self.cache.join(format!("py{}-{key}.lock", py.minor));
        let lock = tokio::task::spawn_blocking(move || FileLock::acquire(&lock_path))
            .await
            .map_err(|e| EtlError::Init(e.to_string()))?
            .map_err(|e| EtlError::Init(format!("lock environment cache: {e}")))?;
        if ready.exists() {
            drop(lock);
            log.line(&format!(
                "using environment {} (built by another target)",
                dir.display()
            ));
            return Ok(env_py.display().to_string());
        }
        let _ = std::fs::remove_dir_all(&dir);
        log.line(&format!(
            "building environment {} for: {}",
            dir.display(),
            reqs.join(" ")
        ));
        let res = self.build(py, &dir, &reqs, log, builder).await;
        if let Err(e) = res {
            let _ = std::fs::remove_dir_all(&dir);
            drop(lock);
            return Err(e);
        }
        std::fs::write(&ready, reqs.join("\n")).map_err(|e| EtlError::Init(e.to_string()))?;
        drop(lock);
        Ok(env_py.display().to_string())
    }

    async fn build(
        &self,
        py: &Python,
        dir: &Path,
        reqs: &[&str],
        log: &LogSink,
        builder: &Builder,
    ) -> Result<(), EtlError> {
        let init = |what: &str, e: std::io::Error| EtlError::Init(format!("{what}: {e}"));
        // The base interpreter's packages (after the environment's own):
        // asked of the host's interpreter itself, no user code involved.
        let base = tokio::process::Command::new(&py.exe)
            .args(["-c", "import site,sysconfig; ps=list(dict.fromkeys([sysconfig.get_paths()['purelib'], sysconfig.get_paths()['platlib']] + site.getsitepackages())); print('\\n'.join(ps))"])
            .output()
            .await
            .map_err(|e| EtlError::Init(format!("inspect {}: {e}", py.exe)))?;
        let base = String::from_utf8_lossy(&base.stdout).trim().to_string();
        // A fresh staging dir the install owns; the requirements go in
        // before any of its processes exists.
        let staging = self.cache.join(format!(".build-{}", ais_core::gen_id(12)));
        let _cleanup = RemoveOnDrop(staging.clone());
        crate::workdir::new_dir(&staging, 0o700, builder.ids)
            .map_err(|e| init("create a staging dir", e))?;
        let req_file = staging.join("requirements.txt");
        crate::untrusted::write_beneath(
            &staging,
            Path::new("requirements.txt"),
            reqs.join("\n").as_bytes(),
        )
        .map_err(|e| init("write requirements", e))?;
        let limits = crate::spec::Limits {
            cpu_seconds: None,
            output: None,
            ..crate::sandbox::default_limits()
        };
        let sb = crate::sandbox::Sandbox::new(
            builder.host.clone(),
            "deps",
            limits,
            builder.network,
            &staging,
            &builder.ro,
            builder.ids,
        )?;
        let venv = staging.join("venv");
        let installer = if which("uv").is_some() { "uv" } else { "pip" };
        let mut cmd = crate::procs::clean_command(&py.exe, crate::procs::PIP_ENV);
        cmd.args(["-c", BUILD_SCRIPT])
            .arg(&req_file)
            .arg(&venv)
            .arg(installer)
            .arg(UNMET_SCRIPT)
            .env("HOME", &staging)
            .env("TMPDIR", &staging)
            .env("PYTHONPATH", base.replace('\n', ":"))
            .current_dir(&staging);
        let mut proc =
            crate::procs::spawn_isolated(&mut cmd, None, &builder.tracker, log, Some(&sb))
                .map_err(|e| init(&format!("start the dependency install ({})", py.exe), e))?;
        // If this future is dropped (the caller's timeout), what runs under
        // the install's uid is killed all the same.
        let mut reaper = UidReaper(
            builder
                .own_uid
                .then_some(builder.ids)
                .flatten()
                .map(|i| i.0),
        );
        let status = tokio::time::timeout(builder.timeout, follow(&mut proc.child, log)).await;
        // Nothing of the install lives on (its group and cgroup killed, and
        // any process left under its own uid) before the node reads what it
        // left.
        proc.kill();
        if let Some(uid) = reaper.0.take() {
            let left = tokio::task::spawn_blocking(move || crate::procs::kill_uid(uid))
                .await
                .unwrap_or(0);
            if left > 0 {
                log.line(&format!("killed {left} processes the install left running"));
            }
        }
        let (status, tail) = match status {
            Err(_) => {
                return Err(EtlError::Init(format!(
                    "dependency install did not finish within {:?} (the ETL's init_timeout)",
                    builder.timeout
                )))
            }
            Ok(r) => r.map_err(|e| init("dependency install", e))?,
        };
        if !status.success() {
            let what = match status.code() {
                Some(EXIT_VENV) => "create venv",
                Some(EXIT_PIP) => "pip install",
                _ => "dependency install",
            };
            let hint = if builder.network {
                ""
            } else {
                "\n(the install ran without network: on a cluster without authentication it gets \
                 none unless every node runs with AIS_ETL_ALLOW_HOST_NETWORK=1)"
            };
            return Err(EtlError::Init(format!(
                "{what} failed ({status}):\n{tail}{hint}"
            )));
        }
        let uid = builder.ids.map(|i| i.0).unwrap_or_else(|| {
            // SAFETY: geteuid has no failure mode.
            unsafe { libc::geteuid() }
        });
        let (src, dst) = (venv.clone(), dir.to_path_buf());
        let site = Path::new("lib")
            .join(format!("python{}", py.minor))
            .join("site-packages")
            .join("_aistore_rs_base.pth");
        let copied = tokio::task::spawn_blocking(move || {
            let c = crate::untrusted::copy_tree(&src, &dst, uid)?;
            crate::untrusted::write_beneath(&dst, &site, base.as_bytes())?;
            Ok::<_, std::io::Error>(c)
        })
        .await
        .map_err(|e| EtlError::Init(e.to_string()))?
        .map_err(|e| init("take the environment from its staging dir", e))?;
        if copied.skipped > 0 {
            log.line(&format!(
                "left out {} entries of the staging dir (not the install's own files)",
                copied.skipped
            ));
        }
        Ok(())
    }
}

/// Kills what runs under a dependency install's own uid when dropped
/// (unless the build did it already and took the uid).
struct UidReaper(Option<u32>);

impl Drop for UidReaper {
    fn drop(&mut self) {
        if let Some(uid) = self.0.take() {
            std::thread::spawn(move || crate::procs::kill_uid(uid));
        }
    }
}

/// Removes a staging dir however the build ends (`remove_dir_all` never
/// follows links).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run in the sandbox by the base interpreter: argv = requirements file,
/// venv dir, installer (`uv` or `pip`), the unmet-requirements script.
/// Creates the venv, installs what the environment (which sees the base
/// interpreter's packages through PYTHONPATH) does not already satisfy.
const BUILD_SCRIPT: &str = r##"
import os, shutil, subprocess, sys, venv
req, env, installer, unmet = sys.argv[1:5]
try:
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env)
except Exception as e:
    print("create venv: %s" % e, file=sys.stderr)
    sys.exit(3)
py = os.path.join(env, "bin", "python")
r = subprocess.run([py, "-c", unmet, req], capture_output=True, text=True)
if r.returncode == 0:
    missing = [l.strip() for l in r.stdout.splitlines() if l.strip()]
else:
    missing = [l.strip() for l in open(req) if l.strip() and not l.startswith("#")]
if not missing:
    print("every requirement is already satisfied by the base interpreter: nothing to install")
    sys.exit(0)
print("installing: " + " ".join(missing), flush=True)
todo = os.path.join(os.path.dirname(env), "requirements-missing.txt")
with open(todo, "w") as f:
    f.write("\n".join(missing))
if installer == "uv":
    cmd = ["uv", "pip", "install", "--python", py, "-r", todo]
else:
    cmd = [sys.executable, "-m", "pip", "--python", py, "install",
           "--disable-pip-version-check", "--no-input", "-r", todo]
sys.exit(0 if subprocess.run(cmd).returncode == 0 else 4)
"##;

/// Prints the requirement lines (file in argv[1]) that the running
/// interpreter does not satisfy; anything it cannot parse counts as unmet.
const UNMET_SCRIPT: &str = r##"
import sys
import importlib.metadata as md
try:
    from packaging.requirements import Requirement
except ImportError:
    try:
        from pip._vendor.packaging.requirements import Requirement
    except ImportError:
        Requirement = None
for line in open(sys.argv[1]).read().splitlines():
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    if Requirement is None:
        print(line)
        continue
    try:
        r = Requirement(line)
        if r.marker is not None and not r.marker.evaluate():
            continue
        if r.url:
            print(line)
            continue
        v = md.version(r.name)
        if r.specifier and not r.specifier.contains(v, prereleases=True):
            print(line)
    except Exception:
        print(line)
"##;

fn which(cmd: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
}

/// Streams a child's output into the ETL log until it exits; answers its
/// status and the output's last lines (pip's message on a failure).
async fn follow(
    child: &mut tokio::process::Child,
    log: &LogSink,
) -> std::io::Result<(std::process::ExitStatus, String)> {
    let tail = std::sync::Arc::new(std::sync::Mutex::new(
        std::collections::VecDeque::<String>::new(),
    ));
    let mut tasks = Vec::new();
    let out = child.stdout.take();
    let err = child.stderr.take();
    for stream in [
        out.map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        err.map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let log = log.clone();
        let tail = tail.clone();
        tasks.push(tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                log.line(&l);
                if let Ok(mut t) = tail.lock() {
                    t.push_back(l);
                    if t.len() > 15 {
                        t.pop_front();
                    }
                }
            }
        }));
    }
    let status = child.wait().await?;
    // A descendant may hold the pipes open after the child exited: its
    // output is not waited for (the caller kills it).
    for mut t in tasks {
        if tokio::time::timeout(std::time::Duration::from_secs(2), &mut t)
            .await
            .is_err()
        {
            t.abort();
        }
    }
    let tail = tail
        .lock()
        .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
        .unwrap_or_default();
    Ok((status, tail))
}

struct FileLock(std::fs::File);

impl FileLock {
    fn acquire(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::io::AsRawFd;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Self(f))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        use std::os::unix::io::AsRawFd;
        // SAFETY: unlocking our own descriptor.
        unsafe {
            libc::flock(self.0.as_raw_fd(), libc::LOCK_UN);
        }
    }
}
