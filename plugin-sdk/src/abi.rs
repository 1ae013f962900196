//! ABI v1 glue: what [`crate::export_plugin!`] expands to. Plugin authors do not call this.
//!
//! The contract itself (export and import names, status codes, sport bits, the version) is
//! [`opensports_proto::plugin_abi`], which the server's host imports too; it is re-exported
//! here. The export names in [`crate::export_plugin!`] are spelled out because `#[no_mangle]`
//! takes the function's own name; the server checks a module's exports against [`export`].
//! plugin-sdk/README.md documents every byte.

use std::collections::HashMap;

pub use opensports_proto::plugin_abi::{ABI_VERSION, IMPORT_MODULE, Status, export, import, sports_mask};

use crate::{Ctx, HostError, Level, Plugin};

/// The raw status values, as the exports return them.
pub mod status {
    use super::Status;
    pub const OK: i32 = Status::Ok.code();
    pub const BAD_INPUT_BYTES: i32 = Status::BadInputBytes.code();
}

/// What the plugin can ask of its host. The wasm build talks to the server through
/// [`WasmHost`]; [`crate::testing`] provides one for native tests.
pub trait Host {
    fn emit(&mut self, name: &str, payload: &[u8]) -> Result<(), HostError>;
    /// Writes outputs into `out`, returns how many.
    fn infer(&mut self, model: &str, inputs: &[f32], out: &mut [f32]) -> Result<usize, HostError>;
    fn log(&mut self, level: Level, msg: &str);
}

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "opensports")]
unsafe extern "C" {
    #[link_name = "emit"]
    fn host_emit(topic: *const u8, topic_len: usize, payload: *const u8, payload_len: usize) -> i32;
    #[link_name = "infer"]
    fn host_infer(
        model: *const u8,
        model_len: usize,
        inputs: *const f32,
        inputs_len: usize,
        outputs: *mut f32,
        outputs_cap: usize,
    ) -> i32;
    #[link_name = "log"]
    fn host_log(level: i32, msg: *const u8, msg_len: usize);
}

/// The server, seen from inside the wasm sandbox.
#[derive(Debug, Default)]
pub struct WasmHost;

#[cfg(target_arch = "wasm32")]
impl Host for WasmHost {
    fn emit(&mut self, name: &str, payload: &[u8]) -> Result<(), HostError> {
        // SAFETY: both slices are valid for their lengths for the duration of the call; the
        // host only reads them.
        let s = unsafe { host_emit(name.as_ptr(), name.len(), payload.as_ptr(), payload.len()) };
        if s == status::OK { Ok(()) } else { Err(HostError::from_status(s)) }
    }

    fn infer(&mut self, model: &str, inputs: &[f32], out: &mut [f32]) -> Result<usize, HostError> {
        // SAFETY: as for `emit`; `out` is writable for `out.len()` floats.
        let n = unsafe {
            host_infer(
                model.as_ptr(),
                model.len(),
                inputs.as_ptr(),
                inputs.len(),
                out.as_mut_ptr(),
                out.len(),
            )
        };
        if n >= 0 { Ok(n as usize) } else { Err(HostError::from_status(n)) }
    }

    fn log(&mut self, level: Level, msg: &str) {
        // SAFETY: as for `emit`.
        unsafe { host_log(level as i32, msg.as_ptr(), msg.len()) }
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Host for WasmHost {
    fn emit(&mut self, _name: &str, _payload: &[u8]) -> Result<(), HostError> {
        Err(HostError::Other(0))
    }
    fn infer(&mut self, _model: &str, _inputs: &[f32], _out: &mut [f32]) -> Result<usize, HostError> {
        Err(HostError::NoSuchModel)
    }
    fn log(&mut self, _level: Level, _msg: &str) {}
}

/// 16-byte blocks, so the shared buffer is aligned for rkyv archives.
#[derive(Clone, Copy, Default)]
#[repr(C, align(16))]
struct Block([u8; 16]);

/// The guest side state: the shared buffer and one plugin value per game.
pub struct Runtime<P: Plugin> {
    config: serde_json::Value,
    games: HashMap<String, P>,
    buf: Vec<Block>,
    out: Vec<u8>,
}

impl<P: Plugin> std::fmt::Debug for Runtime<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("games", &self.games.len()).finish_non_exhaustive()
    }
}

impl<P: Plugin> Default for Runtime<P> {
    fn default() -> Self {
        Runtime {
            config: serde_json::Value::Object(Default::default()),
            games: HashMap::new(),
            buf: Vec::new(),
            out: Vec::new(),
        }
    }
}

impl<P: Plugin> Runtime<P> {
    /// `os_buffer(len)`: a 16-byte-aligned buffer of at least `len` bytes, reused across calls.
    pub fn buffer(&mut self, len: usize) -> *mut u8 {
        let blocks = len.div_ceil(16).max(1);
        if self.buf.len() < blocks {
            self.buf.resize(blocks, Block::default());
        }
        self.buf.as_mut_ptr().cast()
    }

    fn bytes(&self, len: usize) -> &[u8] {
        bytes(&self.buf, len)
    }

    /// `init(ptr, len)`: the plugin config (JSON) is in the buffer.
    pub fn init(&mut self, len: usize) -> i32 {
        match serde_json::from_slice(self.bytes(len)) {
            Ok(v) => {
                self.config = v;
                status::OK
            }
            Err(_) => status::BAD_INPUT_BYTES,
        }
    }

    /// `on_event(ptr, len)`: an rkyv-archived event is in the buffer.
    pub fn on_event(&mut self, len: usize, host: &mut dyn Host) -> i32 {
        let bytes = bytes(&self.buf, len);
        let Ok(event) = rkyv::access::<crate::proto::event::ArchivedEvent, rkyv::rancor::Error>(bytes) else {
            return status::BAD_INPUT_BYTES;
        };
        let game = event.game.as_str();
        let plugin = match self.games.get_mut(game) {
            Some(p) => p,
            None => {
                let mut p = P::default();
                p.init(&self.config);
                self.games.entry(game.to_string()).or_insert(p)
            }
        };
        let mut ctx = Ctx::new(host, game);
        plugin.on_event(&mut ctx, event);
        status::OK
    }

    /// `snapshot(ptr, len)`: the game id is in the buffer; returns `ptr << 32 | len` of the
    /// snapshot bytes (valid until the next call).
    pub fn snapshot(&mut self, len: usize) -> u64 {
        let game = String::from_utf8_lossy(self.bytes(len)).into_owned();
        self.out = self.games.get(&game).map(Plugin::snapshot).unwrap_or_default();
        ((self.out.as_ptr() as usize as u64) << 32) | self.out.len() as u64
    }

    /// `restore(ptr, len)`: `u32 LE game id length`, the game id, then the snapshot bytes.
    pub fn restore(&mut self, len: usize) -> i32 {
        let bytes = self.bytes(len);
        let Some((head, rest)) = bytes.split_first_chunk::<4>() else { return status::BAD_INPUT_BYTES };
        let n = u32::from_le_bytes(*head) as usize;
        let (Some(game), Some(state)) = (rest.get(..n), rest.get(n..)) else {
            return status::BAD_INPUT_BYTES;
        };
        let Ok(game) = std::str::from_utf8(game) else { return status::BAD_INPUT_BYTES };
        let mut p = P::default();
        p.init(&self.config);
        if !p.restore(state) {
            return status::BAD_INPUT_BYTES;
        }
        self.games.insert(game.to_string(), p);
        status::OK
    }

    /// `forget(ptr, len)`: the game id is in the buffer; its state is dropped.
    pub fn forget(&mut self, len: usize) -> i32 {
        let game = String::from_utf8_lossy(self.bytes(len)).into_owned();
        self.games.remove(&game);
        status::OK
    }
}

/// The first `len` bytes of the buffer (clamped to its size).
fn bytes(buf: &[Block], len: usize) -> &[u8] {
    let len = len.min(buf.len() * 16);
    // SAFETY: `buf` holds `buf.len() * 16` initialized bytes (Block is plain bytes) and `len`
    // is clamped to that.
    unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), len) }
}

/// Exports a [`Plugin`] type as an OpenSports plugin (ABI v1). Use once per crate, with
/// `crate-type = ["cdylib", "rlib"]`, and build for `wasm32-unknown-unknown`.
#[macro_export]
macro_rules! export_plugin {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        #[allow(unsafe_code)]
        mod __opensports_plugin_exports {
            use super::*;
            use ::core::cell::RefCell;
            use $crate::abi::{Runtime, WasmHost};

            ::std::thread_local! {
                static RT: RefCell<Runtime<$ty>> = RefCell::new(Runtime::default());
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn os_abi_version() -> i32 {
                $crate::abi::ABI_VERSION
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn os_sports() -> i32 {
                $crate::abi::sports_mask(<$ty as $crate::Plugin>::SPORTS)
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn os_buffer(len: i32) -> i32 {
                RT.with(|r| r.borrow_mut().buffer(len as usize) as i32)
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn init(_ptr: i32, len: i32) -> i32 {
                RT.with(|r| r.borrow_mut().init(len as usize))
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn on_event(_ptr: i32, len: i32) -> i32 {
                RT.with(|r| r.borrow_mut().on_event(len as usize, &mut WasmHost))
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn snapshot(_ptr: i32, len: i32) -> i64 {
                RT.with(|r| r.borrow_mut().snapshot(len as usize) as i64)
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn restore(_ptr: i32, len: i32) -> i32 {
                RT.with(|r| r.borrow_mut().restore(len as usize))
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn forget(_ptr: i32, len: i32) -> i32 {
                RT.with(|r| r.borrow_mut().forget(len as usize))
            }
        }
    };
}
