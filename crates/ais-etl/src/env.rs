//! Python interpreters and dependency environments. An environment is built
//! once per host per (interpreter, requirements) hash under a shared cache
//! directory, guarded by a file lock so targets on the same host that init at
//! once build it once; later inits, other ETLs and restarts reuse it.
//!
//! Environments are venvs that also see the base interpreter's packages
//! (through a `.pth` file), so what the host already has is not downloaded
//! again; what the requirements add lives only in the environment.

use crate::logs::LogSink;
use crate::EtlError;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};

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
    pub async fn ensure(&self, py: &Python, deps: &str, log: &LogSink) -> Result<String, EtlError> {
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
        let res = self.build(py, &dir, &reqs, log).await;
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
    ) -> Result<(), EtlError> {
        run_logged(
            &py.exe,
            &["-m", "venv", "--without-pip", &dir.display().to_string()],
            log,
            "create venv",
        )
        .await?;
        // Let the environment see the base interpreter's packages (after its own).
        let base = tokio::process::Command::new(&py.exe)
            .args(["-c", "import site,sysconfig; ps=list(dict.fromkeys([sysconfig.get_paths()['purelib'], sysconfig.get_paths()['platlib']] + site.getsitepackages())); print('\\n'.join(ps))"])
            .output()
            .await
            .map_err(|e| EtlError::Init(format!("inspect {}: {e}", py.exe)))?;
        let site = dir
            .join("lib")
            .join(format!("python{}", py.minor))
            .join("site-packages");
        std::fs::create_dir_all(&site).map_err(|e| EtlError::Init(e.to_string()))?;
        std::fs::write(site.join("_aistore_rs_base.pth"), &base.stdout)
            .map_err(|e| EtlError::Init(e.to_string()))?;
        let req_file = dir.join("requirements.txt");
        std::fs::write(&req_file, reqs.join("\n")).map_err(|e| EtlError::Init(e.to_string()))?;
        let env_py = dir.join("bin").join("python").display().to_string();
        // What the environment already has (the base interpreter's packages
        // included) is not fetched: a host without network access can still
        // build environments whose requirements its Python satisfies.
        let unmet = tokio::process::Command::new(&env_py)
            .args(["-c", UNMET_SCRIPT, &req_file.display().to_string()])
            .output()
            .await
            .map_err(|e| EtlError::Init(format!("check requirements with {env_py}: {e}")))?;
        let missing: Vec<String> = if unmet.status.success() {
            String::from_utf8_lossy(&unmet.stdout)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        } else {
            reqs.iter().map(|r| r.to_string()).collect()
        };
        if missing.is_empty() {
            log.line("every requirement is already satisfied by the base interpreter: nothing to install");
            return Ok(());
        }
        log.line(&format!("installing: {}", missing.join(" ")));
        let todo = dir.join("requirements-missing.txt");
        std::fs::write(&todo, missing.join("\n")).map_err(|e| EtlError::Init(e.to_string()))?;
        let req = todo.display().to_string();
        if which("uv").is_some() {
            run_logged(
                "uv",
                &["pip", "install", "--python", &env_py, "-r", &req],
                log,
                "uv pip install",
            )
            .await
        } else {
            run_logged(
                &py.exe,
                &[
                    "-m",
                    "pip",
                    "--python",
                    &env_py,
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                    "-r",
                    &req,
                ],
                log,
                "pip install",
            )
            .await
        }
    }
}

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

/// Runs a command, streaming its output into the ETL log; on failure the
/// error carries the output's tail (pip's message).
async fn run_logged(exe: &str, args: &[&str], log: &LogSink, what: &str) -> Result<(), EtlError> {
    // pip runs packages' build scripts: user code, with the index settings
    // of the host and none of the node's secrets.
    let mut child = crate::procs::clean_command(exe, crate::procs::PIP_ENV)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| EtlError::Init(format!("{what}: cannot run {exe}: {e}")))?;
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
    let status = child
        .wait()
        .await
        .map_err(|e| EtlError::Init(format!("{what}: {e}")))?;
    for t in tasks {
        let _ = t.await;
    }
    if status.success() {
        return Ok(());
    }
    let tail = tail
        .lock()
        .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
        .unwrap_or_default();
    Err(EtlError::Init(format!("{what} failed ({status}):\n{tail}")))
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
