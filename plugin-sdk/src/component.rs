//! ABI v2 glue (feature `component`): the bindings of `plugin-sdk/wit/plugin.wit` and the
//! runtime [`crate::export_component!`] expands to. Build the crate for
//! `wasm32-unknown-unknown` as for v1; `opensports plugin build` turns the module into a
//! component (it carries its WIT in a custom section). Plugin authors do not call this.

use std::collections::HashMap;

use crate::abi::Host;
use crate::{ComponentPlugin, Ctx, HostError, Level};

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit/plugin.wit",
        world: "plugin",
        pub_export_macro: true,
        default_bindings_module: "::opensports_plugin_sdk::component::bindings",
    });
}

use bindings::opensports::plugin::host as wit;

/// The server, seen from inside a component.
#[derive(Debug, Default)]
pub struct ComponentHost;

impl Host for ComponentHost {
    fn emit(&mut self, name: &str, payload: &[u8]) -> Result<(), HostError> {
        let payload = std::str::from_utf8(payload).map_err(|_| HostError::BadJson)?;
        wit::emit(name, payload).map_err(HostError::from_status)
    }

    fn infer(&mut self, model: &str, inputs: &[f32], out: &mut [f32]) -> Result<usize, HostError> {
        let got = wit::infer(model, inputs).map_err(HostError::from_status)?;
        if got.len() > out.len() {
            return Err(HostError::OutputTooSmall);
        }
        out[..got.len()].copy_from_slice(&got);
        Ok(got.len())
    }

    fn log(&mut self, level: Level, msg: &str) {
        let l = match level {
            Level::Error => wit::Level::Error,
            Level::Warn => wit::Level::Warn,
            Level::Info => wit::Level::Info,
            Level::Debug => wit::Level::Debug,
        };
        wit::log(l, msg);
    }
}

/// The guest side state: the config and one plugin value per game.
pub struct Runtime<P: ComponentPlugin> {
    config: serde_json::Value,
    games: HashMap<String, P>,
}

impl<P: ComponentPlugin> std::fmt::Debug for Runtime<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("games", &self.games.len()).finish_non_exhaustive()
    }
}

impl<P: ComponentPlugin> Default for Runtime<P> {
    fn default() -> Self {
        Runtime { config: serde_json::Value::Object(Default::default()), games: HashMap::new() }
    }
}

/// Status 1 (`BAD_INPUT_BYTES`): the text handed over is not what the ABI promises.
const BAD_INPUT: i32 = crate::abi::status::BAD_INPUT_BYTES;

impl<P: ComponentPlugin> Runtime<P> {
    pub fn sports() -> u32 {
        crate::abi::sports_mask(P::SPORTS) as u32
    }

    pub fn init(&mut self, config: &str) -> Result<(), i32> {
        self.config = serde_json::from_str(config).map_err(|_| BAD_INPUT)?;
        Ok(())
    }

    pub fn on_event(&mut self, event: &str, host: &mut dyn Host) -> Result<(), i32> {
        let event: crate::proto::Event = serde_json::from_str(event).map_err(|_| BAD_INPUT)?;
        let config = &self.config;
        let plugin = self.games.entry(event.game.clone()).or_insert_with(|| {
            let mut p = P::default();
            p.init(config);
            p
        });
        plugin.on_event(&mut Ctx::new(host, &event.game), &event);
        Ok(())
    }

    pub fn snapshot(&self, game: &str) -> Vec<u8> {
        self.games.get(game).map(P::snapshot).unwrap_or_default()
    }

    pub fn restore(&mut self, game: &str, state: &[u8]) -> Result<(), i32> {
        let mut p = P::default();
        p.init(&self.config);
        if !p.restore(state) {
            return Err(BAD_INPUT);
        }
        self.games.insert(game.to_string(), p);
        Ok(())
    }

    pub fn forget(&mut self, game: &str) {
        self.games.remove(game);
    }
}

/// Exports a [`ComponentPlugin`] type as an OpenSports plugin (ABI v2). Use once per crate,
/// with `crate-type = ["cdylib", "rlib"]` and the SDK's feature `component`, build for
/// `wasm32-unknown-unknown` with `opensports plugin build`.
#[macro_export]
macro_rules! export_component {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        mod __opensports_component_exports {
            use super::*;
            use ::core::cell::RefCell;
            use $crate::component::{ComponentHost, Runtime, bindings};

            ::std::thread_local! {
                static RT: RefCell<Runtime<$ty>> = RefCell::new(Runtime::default());
            }

            struct Exports;

            impl bindings::Guest for Exports {
                fn sports() -> u32 {
                    Runtime::<$ty>::sports()
                }
                fn init(config: ::std::string::String) -> Result<(), i32> {
                    RT.with(|r| r.borrow_mut().init(&config))
                }
                fn on_event(event: ::std::string::String) -> Result<(), i32> {
                    RT.with(|r| r.borrow_mut().on_event(&event, &mut ComponentHost))
                }
                fn snapshot(game: ::std::string::String) -> ::std::vec::Vec<u8> {
                    RT.with(|r| r.borrow().snapshot(&game))
                }
                fn restore(game: ::std::string::String, state: ::std::vec::Vec<u8>) -> Result<(), i32> {
                    RT.with(|r| r.borrow_mut().restore(&game, &state))
                }
                fn forget(game: ::std::string::String) {
                    RT.with(|r| r.borrow_mut().forget(&game))
                }
            }

            bindings::export!(Exports with_types_in bindings);
        }
    };
}
