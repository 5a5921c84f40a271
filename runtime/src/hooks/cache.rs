//! The precompiled-artifact cache: compile a hook once, load it in
//! milliseconds afterwards.
//!
//! Deserializing an artifact runs native code that wasmtime trusts blindly,
//! so this cache only ever reads files it wrote itself: the directory is
//! created private (0700) and refused if others may write to it, each file
//! carries a header with the SHA-256 of its body, and the file name binds the
//! wasm's SHA-256 to the engine's compatibility hash (wasmtime version,
//! target, settings), so a different sluice never picks up a stale artifact.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Marks a file as one of ours, and the layout version of the header.
const MAGIC: &[u8; 16] = b"sluice-hook-v1\0\0";

/// The default cache directory: `$XDG_CACHE_HOME/sluice/hooks`, else
/// `$HOME/.cache/sluice/hooks`; `None` when neither is set.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
    Some(base.join("sluice").join("hooks"))
}

/// Feeds `Hash` output into SHA-256, so the engine's compatibility hash gets
/// a value that is stable across processes (`DefaultHasher` promises none).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        // Unused: callers read the full digest.
        0
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// How a component was obtained, for the load report and the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// No cache configured: compiled in memory.
    Disabled,
    /// Compiled and written to the cache.
    Miss,
    /// Loaded from the cache.
    Hit,
}

/// Compile `wasm`, through the cache at `dir` when there is one.
pub(crate) fn load_component(
    engine: &Engine,
    wasm: &[u8],
    dir: Option<&Path>,
) -> anyhow::Result<(Component, CacheStatus)> {
    let Some(dir) = dir else {
        return Ok((Component::new(engine, wasm)?, CacheStatus::Disabled));
    };
    prepare_dir(dir)?;
    let mut compat = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut compat);
    let compat = compat.0.finalize();
    let name = format!(
        "{}-{}.cwasm",
        hex(&Sha256::digest(wasm)),
        hex(&compat[..12])
    );
    let path = dir.join(name);
    if let Some(artifact) = read_artifact(&path) {
        // SAFETY: the file is one this cache wrote (private directory, our
        // header, body digest checked) for this engine's compatibility hash.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, artifact) };
        match component {
            Ok(c) => return Ok((c, CacheStatus::Hit)),
            // A wasmtime-level mismatch: recompile and overwrite.
            Err(_) => {
                let _ = fs::remove_file(&path);
            }
        }
    }
    let artifact = engine.precompile_component(wasm)?;
    write_artifact(&path, &artifact)
        .with_context(|| format!("writing hook cache file {}", path.display()))?;
    // SAFETY: `artifact` was produced by this engine a moment ago.
    #[allow(unsafe_code)]
    let component = unsafe { Component::deserialize(engine, &artifact)? };
    Ok((component, CacheStatus::Miss))
}

fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
        .with_context(|| format!("creating hook cache dir {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(dir)?.permissions().mode();
        if mode & 0o022 != 0 {
            bail!(
                "hook cache dir {} is writable by others (mode {:o}); refusing to load native code from it",
                dir.display(),
                mode & 0o777
            );
        }
    }
    Ok(())
}

/// The artifact body if `path` is an intact file of ours.
fn read_artifact(path: &Path) -> Option<Vec<u8>> {
    let bytes = fs::read(path).ok()?;
    let (head, body) = bytes.split_at_checked(MAGIC.len() + 32)?;
    let (magic, digest) = head.split_at(MAGIC.len());
    if magic != MAGIC || digest != Sha256::digest(body).as_slice() {
        return None;
    }
    Some(body.to_vec())
}

/// Write atomically (temp file + rename) so a crash never leaves a torn file
/// under the final name. The temp name is this writer's own: two loads of
/// one hook in one process (a reload beside a start, tests in parallel)
/// would otherwise rename each other's file away.
fn write_artifact(path: &Path, body: &[u8]) -> std::io::Result<()> {
    static WRITER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let writer = WRITER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp{}-{writer}", std::process::id()));
    let mut f = fs::File::create(&tmp)?;
    f.write_all(MAGIC)?;
    f.write_all(&Sha256::digest(body))?;
    f.write_all(body)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)
}
