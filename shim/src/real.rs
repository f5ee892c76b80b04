//! The real libc functions behind the ones the shim defines, for calls on descriptors the
//! simulator does not own. A call to `libc::read` from inside the shim would land on the
//! shim's own `read` (it comes first in the lookup order); `dlsym(RTLD_NEXT, …)` finds the
//! next definition, which is libc's.

/// The next definition of libc function `$name` with the given C signature, looked up once.
macro_rules! real {
    ($name:ident: fn($($arg:ty),*) -> $ret:ty) => {{
        static FOUND: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let mut f = FOUND.load(std::sync::atomic::Ordering::Relaxed);
        if f == 0 {
            let symbol = concat!(stringify!($name), "\0");
            // SAFETY: `symbol` is a NUL-terminated C string; RTLD_NEXT asks for the definition
            // after this library's, which dlsym either finds or reports as null.
            #[allow(unused_unsafe)] // the macro may expand inside a caller's unsafe block
            let found = unsafe { libc::dlsym(libc::RTLD_NEXT, symbol.as_ptr().cast()) } as usize;
            f = found;
            if f == 0 {
                $crate::state::die(concat!("libc has no ", stringify!($name)));
            }
            FOUND.store(f, std::sync::atomic::Ordering::Relaxed);
        }
        // SAFETY: `f` is the address of libc's own `$name`, whose C prototype is the signature
        // written at this call site (the same one the shim's definition has).
        #[allow(unused_unsafe)] // as above
        let function = unsafe { std::mem::transmute::<usize, unsafe extern "C" fn($($arg),*) -> $ret>(f) };
        function
    }};
}

pub(crate) use real;
