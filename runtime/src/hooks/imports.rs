//! Imports a hook declares but the host does not provide.
//!
//! Guest toolchains add imports a hook never calls (wasi:http from
//! componentize-js, another world's interfaces): those are linked as
//! functions that trap when called, so the hook still loads.
//!
//! wasmtime's own `Linker::define_unknown_imports_as_traps` cannot be used:
//! it matches instance names exactly, so a guest built against
//! `wasi:random/random@0.2.6` gets a trapping stub defined under that exact
//! name, and the exact name then wins over the semver-compatible
//! `@0.2.12` that wasmtime-wasi provides. Every WASI call of such a guest
//! would trap. Here an interface the host provides in a compatible version
//! is left to wasmtime's semver matching and only the rest is stubbed.

use wasmtime::Engine;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, LinkerInstance, ResourceType};

/// Packages linked into every hook's linker, with the version prefix that
/// is semver-compatible with what is linked (`0.2.` for wasmtime-wasi's
/// WASI 0.2.x, `0.1.` and `0.2.` for our own host interface's worlds).
const PROVIDED_PACKAGES: &[(&str, &str)] = &[
    ("wasi:cli", "0.2."),
    ("wasi:clocks", "0.2."),
    ("wasi:filesystem", "0.2."),
    ("wasi:io", "0.2."),
    ("wasi:random", "0.2."),
    ("wasi:sockets", "0.2."),
    ("sluice:hook", "0.1."),
    ("sluice:hook", "0.2."),
];

/// Whether an import named `ns:pkg/iface@version` comes from a package the
/// host links, in a version semver matching accepts.
pub(crate) fn provided_by_host(import: &str) -> bool {
    let Some((path, version)) = import.split_once('@') else {
        return false;
    };
    let Some((package, _interface)) = path.split_once('/') else {
        return false;
    };
    PROVIDED_PACKAGES
        .iter()
        .any(|(p, v)| *p == package && version.starts_with(v))
}

/// How the host serves one import of a component (what `sluice hook check`
/// shows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportKind {
    /// The hook's own host interface (`sluice:hook/host`, `sluice:hook/types`).
    Host,
    /// A WASI 0.2 interface: linked, and denied unless granted (no files,
    /// network or environment; a frozen clock and fixed randomness without
    /// the `clock` and `random` grants; stdout/stderr discarded without
    /// `stdio`).
    Wasi,
    /// Nobody provides it: linked as functions that trap when called, so the
    /// hook loads as long as it never calls them.
    Stubbed,
}

/// Every import of `component`, by name, with how the host serves it.
pub(crate) fn list(engine: &Engine, component: &Component) -> Vec<(String, ImportKind)> {
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| {
            let kind = if !provided_by_host(name) {
                ImportKind::Stubbed
            } else if name.starts_with("sluice:hook/") {
                ImportKind::Host
            } else {
                ImportKind::Wasi
            };
            (name.to_owned(), kind)
        })
        .collect()
}

/// Define every import of `component` that the host does not provide as a
/// function that traps with a message naming it.
pub(crate) fn stub_unprovided<T: 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    engine: &Engine,
    component: &Component,
) -> anyhow::Result<()> {
    let ty = component.component_type();
    for (name, item) in ty.imports(engine) {
        if provided_by_host(name) {
            continue;
        }
        stub(&mut linker.root(), engine, name, &item.ty, name)?;
    }
    Ok(())
}

fn stub<T: 'static>(
    linker: &mut LinkerInstance<'_, T>,
    engine: &Engine,
    name: &str,
    item: &ComponentItem,
    qualified: &str,
) -> anyhow::Result<()> {
    match item {
        ComponentItem::ComponentFunc(_) => {
            let what = qualified.to_owned();
            linker.func_new(name, move |_, _, _, _| {
                Err(wasmtime::format_err!(
                    "unknown import: `{what}` is not provided by sluice"
                ))
            })?;
        }
        ComponentItem::ComponentInstance(instance) => {
            let mut inner = linker.instance(name)?;
            for (export, ext) in instance.exports(engine) {
                stub(
                    &mut inner,
                    engine,
                    export,
                    &ext.ty,
                    &format!("{qualified}#{export}"),
                )?;
            }
        }
        ComponentItem::Resource(_) => {
            linker.resource(name, ResourceType::host::<()>(), |_, _| Ok(()))?;
        }
        // Type imports need no definition; nested components and core
        // modules cannot be stubbed and fail the load with wasmtime's error.
        ComponentItem::Type(_)
        | ComponentItem::CoreFunc(_)
        | ComponentItem::Module(_)
        | ComponentItem::Component(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::provided_by_host;

    #[test]
    fn compatible_wasi_and_host_interfaces_are_provided() {
        assert!(provided_by_host("wasi:random/random@0.2.6"));
        assert!(provided_by_host("wasi:io/streams@0.2.0"));
        assert!(provided_by_host("wasi:cli/stdout@0.2.12"));
        assert!(provided_by_host("sluice:hook/host@0.1.0"));
        assert!(provided_by_host("sluice:hook/host@0.2.0"));
    }

    #[test]
    fn other_packages_and_versions_are_not() {
        assert!(!provided_by_host("wasi:http/types@0.2.6"));
        assert!(!provided_by_host("wasi:random/random@0.3.0"));
        assert!(!provided_by_host("wasi:random/random"));
        assert!(!provided_by_host("test:extra/x@0.1.0"));
        assert!(!provided_by_host("sluice:hook/host@0.3.0"));
        assert!(!provided_by_host("sluice:hook/host@1.0.0"));
        assert!(!provided_by_host("f"));
    }
}
