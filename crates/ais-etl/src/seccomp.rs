//! The seccomp filter every sandboxed ETL process runs under (installed
//! last in the sandbox's pre-exec hook, after the uid change and
//! `NO_NEW_PRIVS`): system calls that let a process reach beyond itself —
//! tracing or reading another process, new user namespaces, mounts,
//! kernel keyrings, loading code into the kernel — fail with `EPERM`.
//! `clone3` fails with `ENOSYS` (its flags sit behind a pointer a filter
//! cannot read), so libc falls back to `clone`, whose flags are checked.
//! Built once with `seccompiler` (rust-vmm's BPF compiler) for this
//! architecture; `None` where that is not supported.

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Denied outright (`EPERM`).
const DENIED: &[i64] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_bpf,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_setns,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_pidfd_getfd,
];

/// The compiled filters (deny list, then `clone3`), once per process.
pub fn filters() -> Option<&'static [BpfProgram]> {
    static F: OnceLock<Option<Vec<BpfProgram>>> = OnceLock::new();
    F.get_or_init(|| match build() {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!("etl: no seccomp filter: {e}");
            None
        }
    })
    .as_deref()
}

fn build() -> Result<Vec<BpfProgram>, Box<dyn std::error::Error>> {
    let arch = std::env::consts::ARCH.try_into()?;
    let newuser = || -> Result<SeccompRule, seccompiler::BackendError> {
        SeccompRule::new(vec![SeccompCondition::new(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(libc::CLONE_NEWUSER as u64),
            libc::CLONE_NEWUSER as u64,
        )?])
    };
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|s| (*s, Vec::new())).collect();
    rules.insert(libc::SYS_unshare, vec![newuser()?]);
    rules.insert(libc::SYS_clone, vec![newuser()?]);
    let deny = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )?;
    let clone3 = SeccompFilter::new(
        [(libc::SYS_clone3, Vec::new())].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )?;
    Ok(vec![deny.try_into()?, clone3.try_into()?])
}

/// Installs `filters` on the calling thread (between fork and exec: only
/// `prctl` and `seccomp` system calls, no allocation).
pub fn install(filters: &[BpfProgram]) -> std::io::Result<()> {
    for f in filters {
        if seccompiler::apply_filter(f).is_err() {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
