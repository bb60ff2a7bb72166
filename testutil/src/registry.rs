//! A real local registry for tests (Debian's `docker-registry`).
