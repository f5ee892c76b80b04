//! Names: host names resolve on the simulated machine's table (its hosts, not the real
//! resolver). The lists themselves are built by libc from the numeric addresses, so
//! `freeaddrinfo` stays libc's.

use std::ffi::CStr;

use libc::{addrinfo, c_char, c_int, sockaddr, socklen_t};
use selectlab_wire::{Op, Request};

use crate::real::real;
use crate::state::{self, Mode, mode};

/// The numeric form of each address in a reply (1 byte of version, 16 bytes).
fn numeric(reply: &[u8]) -> Vec<String> {
    reply
        .chunks_exact(17)
        .map(|a| {
            let bytes: [u8; 16] = a[1..].try_into().expect("17-byte chunk");
            if a[0] == 4 {
                std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).to_string()
            } else {
                std::net::Ipv6Addr::from(bytes).to_string()
            }
        })
        .collect()
}

/// getaddrinfo(3): a host name is looked up in the simulator's host table; numeric hosts, a
/// null host and the service part go to libc as they are.
///
/// # Safety
/// As for libc's getaddrinfo.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn getaddrinfo(
    node: *const c_char,
    service: *const c_char,
    hints: *const addrinfo,
    res: *mut *mut addrinfo,
) -> c_int {
    let real = real!(getaddrinfo: fn(*const c_char, *const c_char, *const addrinfo, *mut *mut addrinfo) -> c_int);
    // SAFETY: a non-null node is a C string (the caller's promise).
    let name = (!node.is_null()).then(|| {
        unsafe { CStr::from_ptr(node) }
            .to_string_lossy()
            .into_owned()
    });
    let Some(name) =
        name.filter(|n| mode() == Mode::Owner && n.parse::<std::net::IpAddr>().is_err())
    else {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe { real(node, service, hints, res) };
    };
    // SAFETY: hints is null or valid.
    let family = if hints.is_null() {
        0
    } else {
        unsafe { (*hints).ai_family }
    };
    state::owner_or_refuse("getaddrinfo");
    let reply = crate::channel::call(
        &Request::new(Op::Resolve, &[family.into()]).with_data(name.into_bytes()),
    );
    if reply.ret != 0 {
        return reply.ret as c_int;
    }
    let mut numeric_hints: addrinfo = if hints.is_null() {
        // SAFETY: an all-zero addrinfo is valid (zero integers, null pointers): "no hints".
        unsafe { std::mem::zeroed() }
    } else {
        // SAFETY: a non-null `hints` is valid (the caller's promise); a plain C struct copied.
        unsafe { *hints }
    };
    numeric_hints.ai_flags |= libc::AI_NUMERICHOST;
    let mut head: *mut addrinfo = std::ptr::null_mut();
    let mut tail: *mut *mut addrinfo = &mut head;
    for ip in numeric(&reply.data) {
        let c_ip = std::ffi::CString::new(ip).expect("no NUL in an address");
        let mut list = std::ptr::null_mut();
        // SAFETY: valid C strings, hints and out-pointer.
        if unsafe { real(c_ip.as_ptr(), service, &numeric_hints, &mut list) } != 0 {
            continue;
        }
        // SAFETY: `tail` points at the last `ai_next` (or `head`); lists from libc are
        // chains of separately allocated nodes, which freeaddrinfo frees one by one.
        unsafe {
            *tail = list;
            while !(*tail).is_null() {
                tail = &mut (**tail).ai_next;
            }
        }
    }
    if head.is_null() {
        return libc::EAI_NONAME;
    }
    // SAFETY: the caller's out-pointer.
    unsafe { *res = head };
    0
}

/// getnameinfo(3): without NI_NUMERICHOST the host part is the simulator's name for the
/// address; the service part and numeric requests go to libc.
///
/// # Safety
/// As for libc's getnameinfo.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn getnameinfo(
    addr: *const sockaddr,
    addr_len: socklen_t,
    host: *mut c_char,
    host_len: socklen_t,
    serv: *mut c_char,
    serv_len: socklen_t,
    flags: c_int,
) -> c_int {
    let real = real!(getnameinfo: fn(*const sockaddr, socklen_t, *mut c_char, socklen_t, *mut c_char, socklen_t, c_int) -> c_int);
    if mode() != Mode::Owner || host.is_null() || flags & libc::NI_NUMERICHOST != 0 {
        // SAFETY: the arguments are the caller's, passed on unchanged.
        return unsafe { real(addr, addr_len, host, host_len, serv, serv_len, flags) };
    }
    // SAFETY: the caller's address.
    let bytes = match unsafe { crate::sockets::addr_in(addr, addr_len) } {
        Ok(b) => b,
        Err(_) => return libc::EAI_FAMILY,
    };
    state::owner_or_refuse("getnameinfo");
    let reply = crate::channel::call(&Request::new(Op::HostName, &[]).with_data(bytes));
    // SAFETY: the caller's buffers; the numeric form first (it also fills the service).
    let r = unsafe {
        real(
            addr,
            addr_len,
            host,
            host_len,
            serv,
            serv_len,
            flags | libc::NI_NUMERICHOST,
        )
    };
    if r != 0 {
        return r;
    }
    if reply.ret < 0 || reply.data.is_empty() {
        return if flags & libc::NI_NAMEREQD != 0 {
            libc::EAI_NONAME
        } else {
            0
        };
    }
    if reply.data.len() >= host_len as usize {
        return libc::EAI_OVERFLOW;
    }
    // SAFETY: `host` holds `host_len` bytes; the name and its NUL fit.
    unsafe {
        std::ptr::copy_nonoverlapping(reply.data.as_ptr(), host.cast::<u8>(), reply.data.len());
        *host.add(reply.data.len()) = 0;
    }
    0
}
