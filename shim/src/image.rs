//! What an exec would start: a program the shim cannot enter is refused before it runs. A
//! statically linked image (an ELF file with no PT_INTERP, a static PIE included) loads no
//! preload, so its sockets would be real; a `#!` script whose interpreter is one is the same.
//!
//! Everything here works on the stack with raw system calls: an exec may come from a vfork
//! child, which shares its parent's memory.

use libc::c_char;

/// The bytes Linux reads of a file to choose how to run it (BINPRM_BUF_SIZE).
const HEAD_BYTES: usize = 256;
/// Most `#!` interpreters Linux follows in a chain (its binfmt recursion limit).
const MAX_SCRIPT_DEPTH: usize = 4;
/// Longest path the checks build (PATH_MAX).
const MAX_PATH_BYTES: usize = 4096;
/// Most program headers read (more than any ordinary program has).
const MAX_PROGRAM_HEADERS: usize = 128;
/// One ELF64 program header's bytes.
const PROGRAM_HEADER_BYTES: usize = 56;
/// The program header naming the program interpreter (the dynamic loader).
const PT_INTERP: u32 = 3;

/// A path on the stack, NUL-terminated.
struct PathBuf {
    bytes: [u8; MAX_PATH_BYTES],
    len: usize,
}

impl PathBuf {
    /// The path from `parts` joined, or None when it does not fit.
    fn of(parts: &[&[u8]]) -> Option<PathBuf> {
        let mut p = PathBuf {
            bytes: [0; MAX_PATH_BYTES],
            len: 0,
        };
        for part in parts {
            let end = p.len + part.len();
            // Room for the NUL.
            if end >= MAX_PATH_BYTES {
                return None;
            }
            p.bytes[p.len..end].copy_from_slice(part);
            p.len = end;
        }
        Some(p)
    }

    fn as_ptr(&self) -> *const c_char {
        self.bytes.as_ptr().cast()
    }
}

/// Reads up to `buf.len()` bytes of the file at `path` from `offset`; how many, or None.
fn read_at(path: &PathBuf, offset: u64, buf: &mut [u8]) -> Option<usize> {
    let flags = libc::O_RDONLY | libc::O_CLOEXEC;
    // SAFETY: `path` is NUL-terminated; the call opens a file or fails.
    let fd = unsafe { libc::syscall(libc::SYS_openat, libc::AT_FDCWD, path.as_ptr(), flags) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `buf` is writable for its length; the descriptor is ours, closed after.
    let n = unsafe {
        let n = libc::syscall(libc::SYS_pread64, fd, buf.as_mut_ptr(), buf.len(), offset);
        libc::syscall(libc::SYS_close, fd);
        n
    };
    usize::try_from(n).ok()
}

/// Why the image at `path` would run without the shim, if it would: a static ELF image, or a
/// script whose interpreter chain leads to one. A file that cannot be read, or is neither ELF
/// nor a script, is left to the kernel (the exec fails, or runs it, as it would anyway).
fn escapes(path: PathBuf, depth: usize) -> Option<&'static str> {
    let mut head = [0u8; HEAD_BYTES];
    let n = read_at(&path, 0, &mut head)?;
    let head = &head[..n];
    if head.starts_with(b"\x7fELF") {
        // The shim is a 64-bit library: the loader of a 32-bit program skips it.
        if head.get(4) != Some(&2) {
            return Some("a 32-bit program, which cannot load the 64-bit shim");
        }
        return is_static_elf(&path, head).then_some("a statically linked program");
    }
    let line = head.strip_prefix(b"#!")?;
    if depth == MAX_SCRIPT_DEPTH {
        return None;
    }
    let line = line.split(|b| *b == b'\n').next().unwrap_or(line);
    let start = line.iter().position(|b| *b != b' ' && *b != b'\t')?;
    let interpreter = line[start..]
        .split(|b| matches!(b, b' ' | b'\t' | 0))
        .next()
        .filter(|i| !i.is_empty())?;
    escapes(PathBuf::of(&[interpreter])?, depth + 1)
        .map(|_| "a script whose interpreter is statically linked")
}

/// Whether a 64-bit ELF image has no PT_INTERP (headers it cannot read count as dynamic).
fn is_static_elf(path: &PathBuf, head: &[u8]) -> bool {
    let field = |at: usize, len: usize| head.get(at..at + len);
    let (Some(phoff), Some(phentsize), Some(phnum)) =
        (field(0x20, 8), field(0x36, 2), field(0x38, 2))
    else {
        return false;
    };
    let phoff = u64::from_le_bytes(phoff.try_into().expect("8 bytes"));
    let phentsize = usize::from(u16::from_le_bytes(phentsize.try_into().expect("2 bytes")));
    let phnum = usize::from(u16::from_le_bytes(phnum.try_into().expect("2 bytes")));
    if phentsize != PROGRAM_HEADER_BYTES || phnum > MAX_PROGRAM_HEADERS {
        return false;
    }
    let mut headers = [0u8; MAX_PROGRAM_HEADERS * PROGRAM_HEADER_BYTES];
    let want = phnum * PROGRAM_HEADER_BYTES;
    if read_at(path, phoff, &mut headers[..want]) != Some(want) {
        return false;
    }
    !headers[..want]
        .chunks_exact(PROGRAM_HEADER_BYTES)
        .any(|h| u32::from_le_bytes(h[..4].try_into().expect("4 bytes")) == PT_INTERP)
}

/// The bytes of a C string.
///
/// # Safety
/// `s` must be a C string.
unsafe fn bytes<'a>(s: *const c_char) -> &'a [u8] {
    // SAFETY: the caller's promise.
    unsafe { std::ffi::CStr::from_ptr(s) }.to_bytes()
}

/// Why exec of `path` would start a program the shim cannot enter, if it would.
///
/// # Safety
/// `path` must be null or a C string.
pub(crate) unsafe fn path_escapes(path: *const c_char) -> Option<&'static str> {
    if path.is_null() {
        return None;
    }
    // SAFETY: the caller's promise.
    escapes(PathBuf::of(&[unsafe { bytes(path) }])?, 0)
}

/// [`path_escapes`] for execveat's `path` from `dirfd`: the descriptor itself with
/// AT_EMPTY_PATH and an empty path, else the path (an absolute one, or one relative to the
/// directory), through `/proc/self/fd`.
///
/// # Safety
/// `path` must be null or a C string.
pub(crate) unsafe fn at_escapes(
    dirfd: i32,
    path: *const c_char,
    flags: i32,
) -> Option<&'static str> {
    if path.is_null() {
        return None;
    }
    // SAFETY: the caller's promise.
    let path = unsafe { bytes(path) };
    if path.starts_with(b"/") || dirfd == libc::AT_FDCWD {
        return escapes(PathBuf::of(&[path])?, 0);
    }
    let mut digits = [0u8; 12];
    let dirfd = decimal(dirfd, &mut digits)?;
    let whole = if path.is_empty() && flags & libc::AT_EMPTY_PATH != 0 {
        PathBuf::of(&[b"/proc/self/fd/", dirfd])?
    } else {
        PathBuf::of(&[b"/proc/self/fd/", dirfd, b"/", path])?
    };
    escapes(whole, 0)
}

/// `n` in decimal, in `out` (None for a negative number).
fn decimal(n: i32, out: &mut [u8; 12]) -> Option<&[u8]> {
    let mut n = u32::try_from(n).ok()?;
    let mut at = out.len();
    loop {
        at -= 1;
        out[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return Some(&out[at..]);
        }
    }
}

/// [`path_escapes`] for `file` found as execvp finds it: itself when it holds a `/`, else the
/// first executable of that name in PATH (glibc's default when unset).
///
/// # Safety
/// `file` must be null or a C string.
pub(crate) unsafe fn search_escapes(file: *const c_char) -> Option<&'static str> {
    if file.is_null() {
        return None;
    }
    // SAFETY: the caller's promise.
    let name = unsafe { bytes(file) };
    if name.is_empty() || name.contains(&b'/') {
        return escapes(PathBuf::of(&[name])?, 0);
    }
    // SAFETY: getenv reads the environment; the string is read before any exec.
    let path = unsafe { libc::getenv(c"PATH".as_ptr()) };
    let dirs: &[u8] = if path.is_null() {
        b"/bin:/usr/bin"
    } else {
        // SAFETY: getenv returns a C string.
        unsafe { bytes(path) }
    };
    for dir in dirs.split(|b| *b == b':') {
        let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
        let Some(candidate) = PathBuf::of(&[dir, b"/", name]) else {
            continue;
        };
        // SAFETY: `candidate` is NUL-terminated; faccessat only reads it.
        let runnable = unsafe {
            libc::syscall(
                libc::SYS_faccessat,
                libc::AT_FDCWD,
                candidate.as_ptr(),
                libc::X_OK,
            )
        } == 0;
        if runnable {
            return escapes(candidate, 0);
        }
    }
    None
}
