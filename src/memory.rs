//! Memory freed by the process, handed back to the system on the
//! heartbeat rather than at every `free`; and the calls that ask mimalloc
//! (Rust's allocator here) to look at a thread's freed pages, which every
//! module that needs one makes through here.
//!
//! Python allocates request bodies and other objects over 512 bytes with
//! the C library's `malloc`. glibc gives the top of its heap back to the
//! system whenever more than 128 KiB of it is free, so under load every
//! wave of 64 KiB bodies is returned and then faulted in again, page by
//! page: a POST echo of 64 KiB spent 10% of its time in page faults, and
//! its rate rose 27% (ASGI) and 9% (WSGI) once glibc was told to keep
//! what it frees. It is then trimmed once a second (the accept loop's
//! heartbeat), so a server that goes idle still gives back within a second
//! what a spike took. The same heartbeat asks mimalloc, Rust's allocator
//! here, to look at its own freed pages.

/// Called once per worker: glibc keeps up to this much free memory at the
/// top of its heaps, and serves allocations up to `MMAP_FROM` from them
/// (above that, each has its own mapping). Setting either also stops glibc
/// from moving them by itself.
pub(crate) fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const KEEP: libc::c_int = 64 << 20;
        const MMAP_FROM: libc::c_int = 32 << 20;
        // SAFETY: plain settings of the C library's allocator, valid at
        // any time; a refusal (0) leaves glibc's defaults.
        unsafe {
            libc::mallopt(libc::M_TRIM_THRESHOLD, KEEP);
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_FROM);
        }
    }
}

/// The heartbeat's give-back: mimalloc hands pages freed by closed
/// connections back only after a delay, and only when an allocation or a
/// collection on the thread looks (an I/O thread left idle after a spike
/// would keep them for good). The collection is the forced one: the
/// ordinary one left 11 MiB in mimalloc's arena 10 s after 10,000
/// keep-alive connections closed (RSS +12..34% over the start), the forced
/// one 1 MiB (+5%); once a second, its cost under load is a few pages
/// faulted in again. glibc's free memory, kept by [`keep_freed_memory`],
/// goes back here too.
pub(crate) fn give_back_freed_memory() {
    give_back_this_thread();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: glibc locks each arena while it trims it.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Has mimalloc look now at the pages this thread's heap has freed (which
/// it otherwise does only when this thread next allocates), giving back
/// those due.
pub(crate) fn collect_this_thread() {
    // SAFETY: a plain call into the allocator, on this thread's heap.
    unsafe { libmimalloc_sys::mi_collect(false) };
}

/// The forced collection: everything this thread's heap holds freed goes
/// back, cached pages included. For a thread about to end (mimalloc keeps
/// what a thread freed for its own next allocations, which an ended thread
/// never makes) and for the heartbeat's give-back.
pub(crate) fn give_back_this_thread() {
    // SAFETY: a plain call into the allocator, on this thread's heap.
    unsafe { libmimalloc_sys::mi_collect(true) };
}
