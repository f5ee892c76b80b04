//! The exec family keeps the shim, and refuses to start what cannot load it (a static image,
//! see `image`): a program (or its child) that starts another with a cleared
//! or rewritten environment still starts it with `LD_PRELOAD` and the channel's variables, so
//! its socket calls are refused rather than made on the real network. The caller's other
//! variables pass unchanged; its own `LD_PRELOAD` gives way to the shim's. The shim's variables
//! also stay in the program's own environment (unsetenv, setenv, putenv and clearenv leave
//! them), for what starts a program past these calls: system, and execl and its kin.
//!
//! No allocation happens here: Python's `subprocess` execs from a vfork child, which shares
//! its parent's memory. The new environment is built on the stack, from entries captured when
//! the library was loaded.

use std::ffi::CString;
use std::sync::Mutex;

use libc::{c_char, c_int, pid_t, posix_spawn_file_actions_t, posix_spawnattr_t};

use crate::image::{at_escapes, path_escapes, search_escapes};
use crate::real::real;
use crate::state::{refuse, simulated_process};

/// The variables the shim needs in every process it reaches.
const KEPT: [&str; 4] = [
    "LD_PRELOAD",
    selectlab_wire::CHANNEL_PATH_ENV,
    selectlab_wire::CHANNEL_FD_ENV,
    crate::OWNER_ENV,
];

/// Most environment entries an exec may pass (the new environment lives on the stack).
const MAX_ENV_ENTRIES: usize = 4096;

/// `NAME=value` for each of [`KEPT`] that this process was given, captured at load (and again
/// in a child forked from a parked program, whose pid and channel are its own). Each capture is
/// leaked: putenv may have put its strings in the environment.
static ENTRIES: Mutex<&'static [CString]> = Mutex::new(&[]);

/// The captured entries.
fn entries() -> &'static [CString] {
    *ENTRIES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Notes the shim's variables for the execs to come: those this process was given, read from
/// its environment block itself (a program may define its own getenv and setenv, as bash
/// does, and answer from its own tables), with `set` taking the place of any given.
pub(crate) fn capture(set: &[(&str, String)]) {
    let mut entries: Vec<CString> = set
        .iter()
        .filter_map(|(name, value)| CString::new(format!("{name}={value}")).ok())
        .collect();
    let mut at = current_env();
    // SAFETY: `environ` is a null-terminated array of C strings (or null), read on the only
    // thread: before the program's `main` runs, or in a child forked from the parked program.
    while !at.is_null() && unsafe { !(*at).is_null() } {
        // SAFETY: as above.
        let entry = unsafe { std::ffi::CStr::from_ptr(*at) };
        let bytes = entry.to_bytes();
        let named =
            |name: &str| bytes.starts_with(name.as_bytes()) && bytes.get(name.len()) == Some(&b'=');
        if KEPT.iter().any(|k| named(k)) && !set.iter().any(|(name, _)| named(name)) {
            entries.push(entry.to_owned());
        }
        // SAFETY: the array goes on until its null.
        at = unsafe { at.add(1) };
    }
    *ENTRIES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = entries.leak();
}

/// Whether `entry` (a C string) sets one of [`KEPT`].
///
/// # Safety
/// `entry` must be a C string.
unsafe fn sets_kept(entry: *const c_char) -> bool {
    // SAFETY: the caller's promise.
    let bytes = unsafe { std::ffi::CStr::from_ptr(entry) }.to_bytes();
    KEPT.iter().any(|name| {
        bytes.len() > name.len() && bytes.starts_with(name.as_bytes()) && bytes[name.len()] == b'='
    })
}

/// Refuses an exec, by the program or a descendant, of what the shim cannot enter (see
/// `image`).
///
/// # Safety
/// `what` must be null or a C string.
unsafe fn refuse_escape(what: *const c_char, why: Option<&str>) {
    let Some(why) = why.filter(|_| simulated_process()) else {
        return;
    };
    // SAFETY: `what` is non-null here (a null path escapes nothing) and a C string.
    let name = unsafe { std::ffi::CStr::from_ptr(what) }.to_string_lossy();
    refuse(&format!(
        "exec of {name}: {why}; nothing can be preloaded into it, so its sockets would be real"
    ));
}

/// Calls `exec` with `envp` rewritten to hold the shim's variables, on the stack.
///
/// # Safety
/// `envp` must be null or a null-terminated array of C strings.
unsafe fn with_shim_env(
    envp: *const *const c_char,
    exec: impl FnOnce(*const *const c_char) -> c_int,
) -> c_int {
    let entries = entries();
    if entries.is_empty() {
        return exec(envp);
    }
    let mut env: [*const c_char; MAX_ENV_ENTRIES + 1] = [std::ptr::null(); MAX_ENV_ENTRIES + 1];
    let mut n = 0;
    for entry in entries {
        env[n] = entry.as_ptr();
        n += 1;
    }
    let mut at = envp;
    // SAFETY: the caller's promise: a null-terminated array of C strings (or null).
    while !at.is_null() && unsafe { !(*at).is_null() } {
        // SAFETY: as above.
        let entry = unsafe { *at };
        // SAFETY: an entry of the caller's array is a C string.
        if unsafe { !sets_kept(entry) } {
            if n == MAX_ENV_ENTRIES {
                refuse(&format!(
                    "an exec with more than {MAX_ENV_ENTRIES} environment variables"
                ));
            }
            env[n] = entry;
            n += 1;
        }
        // SAFETY: the array goes on until its null.
        at = unsafe { at.add(1) };
    }
    exec(env.as_ptr())
}

/// Whether `name` (a C string) is one of [`KEPT`], in a process the shim serves.
///
/// # Safety
/// `name` must be null or a C string.
unsafe fn guarded(name: *const c_char) -> bool {
    if !simulated_process() || name.is_null() {
        return false;
    }
    // SAFETY: the caller's promise.
    let name = unsafe { std::ffi::CStr::from_ptr(name) }.to_bytes();
    KEPT.iter().any(|k| k.as_bytes() == name)
}

/// unsetenv(3): the shim's variables stay in the program's environment, so that what glibc
/// starts from it past the exec calls above (system, execl and its variadic kin) still loads
/// the shim. Python's `os.environ.clear()` unsets each variable this way.
///
/// # Safety
/// As for libc's unsetenv.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn unsetenv(name: *const c_char) -> c_int {
    // SAFETY: the caller's promise.
    if unsafe { guarded(name) } {
        return 0;
    }
    // SAFETY: the argument is the caller's, passed on unchanged.
    unsafe { real!(unsetenv: fn(*const c_char) -> c_int)(name) }
}

/// setenv(3): the shim's variables keep their values.
///
/// # Safety
/// As for libc's setenv.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn setenv(
    name: *const c_char,
    value: *const c_char,
    replace: c_int,
) -> c_int {
    // SAFETY: the caller's promise.
    if unsafe { guarded(name) } {
        return 0;
    }
    // SAFETY: the arguments are the caller's, passed on unchanged.
    unsafe { real!(setenv: fn(*const c_char, *const c_char, c_int) -> c_int)(name, value, replace) }
}

/// putenv(3): an entry that would set one of the shim's variables is left out.
///
/// # Safety
/// As for libc's putenv.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn putenv(entry: *mut c_char) -> c_int {
    // SAFETY: the caller's promise: a C string.
    if simulated_process() && !entry.is_null() && unsafe { sets_kept(entry) } {
        return 0;
    }
    // SAFETY: the argument is the caller's, passed on unchanged.
    unsafe { real!(putenv: fn(*mut c_char) -> c_int)(entry) }
}

/// clearenv(3): clears the environment, then puts the shim's variables back.
#[unsafe(no_mangle)]
pub extern "C" fn clearenv() -> c_int {
    // SAFETY: clearenv takes nothing.
    let cleared = unsafe { real!(clearenv: fn() -> c_int)() };
    if simulated_process() {
        for entry in entries() {
            // SAFETY: the entries live as long as the process (a static never dropped), as
            // putenv requires; glibc never writes through the pointer.
            unsafe { real!(putenv: fn(*mut c_char) -> c_int)(entry.as_ptr().cast_mut()) };
        }
    }
    cleared
}

unsafe extern "C" {
    static environ: *const *const c_char;
}

/// The calling process's environment.
fn current_env() -> *const *const c_char {
    // SAFETY: glibc's `environ` is a valid null-terminated array (or null); read, not kept.
    unsafe { environ }
}

/// execve(2).
///
/// # Safety
/// As for libc's execve.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn execve(
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    // SAFETY: the caller's promise: `path` is a C string.
    unsafe { refuse_escape(path, path_escapes(path)) };
    // SAFETY: the caller's arguments, with the environment rewritten.
    unsafe {
        with_shim_env(envp, |env| {
            real!(execve: fn(*const c_char, *const *const c_char, *const *const c_char) -> c_int)(
                path, argv, env,
            )
        })
    }
}

/// execveat(2): as execve, for a path from a directory descriptor, or the descriptor itself.
///
/// # Safety
/// As for libc's execveat.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn execveat(
    dirfd: c_int,
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    flags: c_int,
) -> c_int {
    // SAFETY: the caller's promise: `path` is a C string.
    unsafe { refuse_escape(path, at_escapes(dirfd, path, flags)) };
    // SAFETY: the caller's arguments, with the environment rewritten.
    unsafe {
        with_shim_env(envp, |env| {
            real!(execveat: fn(c_int, *const c_char, *const *const c_char, *const *const c_char, c_int) -> c_int)(
                dirfd, path, argv, env, flags,
            )
        })
    }
}

/// execv(3): execve with the current environment (glibc's own calls the kernel past the PLT).
///
/// # Safety
/// As for libc's execv.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn execv(path: *const c_char, argv: *const *const c_char) -> c_int {
    // SAFETY: as for execve.
    unsafe { execve(path, argv, current_env()) }
}

/// execvpe(3): the PATH search is glibc's; the environment is rewritten.
///
/// # Safety
/// As for libc's execvpe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn execvpe(
    file: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    // SAFETY: the caller's promise: `file` is a C string.
    unsafe { refuse_escape(file, search_escapes(file)) };
    // SAFETY: the caller's arguments, with the environment rewritten.
    unsafe {
        with_shim_env(envp, |env| {
            real!(execvpe: fn(*const c_char, *const *const c_char, *const *const c_char) -> c_int)(
                file, argv, env,
            )
        })
    }
}

/// execvp(3): execvpe with the current environment.
///
/// # Safety
/// As for libc's execvp.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn execvp(file: *const c_char, argv: *const *const c_char) -> c_int {
    // SAFETY: as for execvpe.
    unsafe { execvpe(file, argv, current_env()) }
}

/// posix_spawn(3).
///
/// # Safety
/// As for libc's posix_spawn.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn posix_spawn(
    pid: *mut pid_t,
    path: *const c_char,
    actions: *const posix_spawn_file_actions_t,
    attr: *const posix_spawnattr_t,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
) -> c_int {
    // SAFETY: the caller's promise: `path` is a C string.
    unsafe { refuse_escape(path, path_escapes(path)) };
    // SAFETY: the caller's arguments, with the environment rewritten.
    unsafe {
        with_shim_env(envp.cast(), |env| {
            real!(posix_spawn: fn(*mut pid_t, *const c_char, *const posix_spawn_file_actions_t, *const posix_spawnattr_t, *const *mut c_char, *const *mut c_char) -> c_int)(
                pid,
                path,
                actions,
                attr,
                argv,
                env.cast(),
            )
        })
    }
}

/// posix_spawnp(3).
///
/// # Safety
/// As for libc's posix_spawnp.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn posix_spawnp(
    pid: *mut pid_t,
    file: *const c_char,
    actions: *const posix_spawn_file_actions_t,
    attr: *const posix_spawnattr_t,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
) -> c_int {
    // SAFETY: the caller's promise: `file` is a C string.
    unsafe { refuse_escape(file, search_escapes(file)) };
    // SAFETY: the caller's arguments, with the environment rewritten.
    unsafe {
        with_shim_env(envp.cast(), |env| {
            real!(posix_spawnp: fn(*mut pid_t, *const c_char, *const posix_spawn_file_actions_t, *const posix_spawnattr_t, *const *mut c_char, *const *mut c_char) -> c_int)(
                pid,
                file,
                actions,
                attr,
                argv,
                env.cast(),
            )
        })
    }
}

/// Sets one of the shim's own variables in this process's environment (the guard of `setenv`
/// above keeps the program from changing them).
pub(crate) fn set_own(name: &str, value: &str) {
    let (Ok(name), Ok(value)) = (CString::new(name), CString::new(value)) else {
        return;
    };
    // SAFETY: both are C strings alive for the call; setenv copies them.
    unsafe {
        real!(setenv: fn(*const c_char, *const c_char, c_int) -> c_int)(
            name.as_ptr(),
            value.as_ptr(),
            1,
        )
    };
}
