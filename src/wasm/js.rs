//! Raw bindings to the few runtime APIs the client needs. All of them exist
//! on the global object in browsers, Node 18+ and workerd; `window` does not,
//! so nothing here goes through it.

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    pub type AbortController;
    #[wasm_bindgen(constructor)]
    pub fn new() -> AbortController;
    #[wasm_bindgen(method, getter)]
    pub fn signal(this: &AbortController) -> AbortSignal;

    #[derive(Clone)]
    pub type AbortSignal;
    #[wasm_bindgen(method, getter)]
    pub fn aborted(this: &AbortSignal) -> bool;
    #[wasm_bindgen(method, js_name = addEventListener)]
    pub fn add_event_listener(this: &AbortSignal, kind: &str, listener: &Function);
    #[wasm_bindgen(method, js_name = removeEventListener)]
    pub fn remove_event_listener(this: &AbortSignal, kind: &str, listener: &Function);

    pub type Response;
    #[wasm_bindgen(method, getter)]
    pub fn status(this: &Response) -> u16;
    #[wasm_bindgen(method, getter)]
    pub fn headers(this: &Response) -> Headers;
    #[wasm_bindgen(method)]
    pub fn text(this: &Response) -> Promise;
    #[wasm_bindgen(method, getter)]
    pub fn body(this: &Response) -> Option<ReadableStream>;

    pub type ReadableStream;
    #[wasm_bindgen(method, js_name = getReader)]
    pub fn get_reader(this: &ReadableStream) -> ReadableStreamDefaultReader;

    pub type Headers;
    #[wasm_bindgen(method)]
    pub fn get(this: &Headers, name: &str) -> Option<String>;

    pub type ReadableStreamDefaultReader;
    #[wasm_bindgen(method)]
    pub fn read(this: &ReadableStreamDefaultReader) -> Promise;

    pub type TextDecoder;
    #[wasm_bindgen(constructor)]
    pub fn new() -> TextDecoder;
    #[wasm_bindgen(method)]
    pub fn decode(this: &TextDecoder, chunk: &JsValue, options: &JsValue) -> String;

    #[wasm_bindgen(js_name = setTimeout)]
    pub fn set_timeout(callback: &Function, ms: f64) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    pub fn clear_timeout(id: &JsValue);
}
