//! Busybox root filesystems made from Debian's `busybox-static`.
