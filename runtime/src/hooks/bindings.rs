//! Host bindings of every published `sluice:hook` world: a component
//! implements one, and the host serves each.

/// `sluice:hook@0.2.0` (`wit/hook.wit`): the caller's identity in the
/// context, and the server-to-client phases.
pub(crate) mod v2 {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "sluice:hook/hook@0.2.0",
    });
}

/// `sluice:hook@0.1.0` (`wit/0.1.0/hook.wit`): requests and their answers.
pub(crate) mod v1 {
    wasmtime::component::bindgen!({
        path: "../wit/0.1.0",
        world: "sluice:hook/hook@0.1.0",
    });
}
