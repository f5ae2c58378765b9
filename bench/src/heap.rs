//! Net heap growth over a window: the bench's global allocator counts the bytes allocated
//! minus the bytes freed while a [`Window`] is open, and nothing otherwise (one relaxed load
//! per allocation), so the other scenarios run on the plain system allocator's speed.
//!
//! The bench's only unsafe code: a `GlobalAlloc` must be an `unsafe impl`; every method
//! forwards to [`System`] unchanged.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

/// The system allocator, counting while a window is open.
pub struct Counting;

static ON: AtomicBool = AtomicBool::new(false);
static NET: AtomicI64 = AtomicI64::new(0);

fn count(delta: i64) {
    if ON.load(Ordering::Relaxed) {
        NET.fetch_add(delta, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` unchanged; the counting has no effect on memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as i64);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as i64);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as i64));
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as i64 - layout.size() as i64);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// An open counting window; [`Window::bytes`] is the net heap growth since it opened. One at a
/// time (the scenarios that use it run alone).
pub struct Window(());

impl Window {
    /// Opens a window.
    pub fn open() -> Self {
        NET.store(0, Ordering::Relaxed);
        ON.store(true, Ordering::Relaxed);
        Window(())
    }

    /// Net bytes allocated and not freed since the window opened.
    pub fn bytes(&self) -> i64 {
        NET.load(Ordering::Relaxed)
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        ON.store(false, Ordering::Relaxed);
    }
}
