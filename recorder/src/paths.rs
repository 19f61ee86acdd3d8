//! Source paths as people read them: a file inside a dependency that cargo unpacked is named
//! from the crate's folder on. Used by the recorder to name what tokio made inside its own
//! source, and by the analyzer for every site.

/// The path of a file inside a dependency's source that cargo unpacked
/// (`~/.cargo/registry/src/<index>/tokio-1.47.1/src/sync/mutex.rs`, or a git checkout's
/// `~/.cargo/git/checkouts/<repo>/<rev>/src/lib.rs`), from the crate's (or repository's)
/// folder on: `tokio-1.47.1/src/sync/mutex.rs`. The rest says only where one machine keeps
/// its cache. `None` for any other path.
pub fn dependency_path(path: &str) -> Option<&str> {
    if let Some((_, inside)) = path.split_once("/.cargo/registry/src/") {
        // Past the index's folder.
        return inside.split_once('/').map(|(_, crate_path)| crate_path);
    }
    path.split_once("/.cargo/git/checkouts/").map(|(_, repository_path)| repository_path)
}

/// `path` as people read it: from a dependency's folder on (see [`dependency_path`]), else
/// as it is.
pub fn readable(path: &str) -> &str {
    dependency_path(path).unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_in_cargos_cache_are_named_from_their_crate_on() {
        assert_eq!(
            dependency_path(
                "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.54.1/src/sync/mutex.rs"
            ),
            Some("tokio-1.54.1/src/sync/mutex.rs")
        );
        assert_eq!(
            dependency_path("/home/u/.cargo/git/checkouts/bb8-3f1a/9c2e1d0/bb8/src/lib.rs"),
            Some("bb8-3f1a/9c2e1d0/bb8/src/lib.rs")
        );
        assert_eq!(dependency_path("src/main.rs"), None);
        assert_eq!(dependency_path("/work/app/src/main.rs"), None);
        assert_eq!(readable("src/main.rs"), "src/main.rs");
    }
}
