//! A one-call allocator for the bundled guests: flowd runs each call in a fresh instance,
//! so nothing needs to be freed for reuse. Blocks are bumped from one static region (in
//! the initial memory, so using it grows nothing); freeing or growing the last block moves
//! the bump back or forward in place, any other free is dropped. Past the region, blocks
//! come from the system allocator (dlmalloc), so a large input costs at most the region
//! more than it did.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Bytes of the bump region.
const REGION: usize = 64 << 10;

/// The bytes are reached through the static's address only, never by field.
#[repr(align(16))]
struct Region(#[allow(dead_code)] [u8; REGION]);

static mut BYTES: Region = Region([0; REGION]);

pub struct Arena {
    /// Start of the region (0 until the first allocation).
    base: Cell<usize>,
    /// Where the next block goes.
    top: Cell<usize>,
    /// Where the last block starts (a free or grow of it works in place).
    last: Cell<usize>,
}

// SAFETY: the guests are single-threaded (wasm32 without threads).
unsafe impl Sync for Arena {}

impl Arena {
    pub const fn new() -> Arena {
        Arena {
            base: Cell::new(0),
            top: Cell::new(0),
            last: Cell::new(usize::MAX),
        }
    }

    fn owns(&self, ptr: *mut u8) -> bool {
        let p = ptr as usize;
        let base = self.base.get();
        base != 0 && p >= base && p < base + REGION
    }

    /// A block of `layout` from the region, or null when it does not fit.
    fn bump(&self, layout: Layout) -> *mut u8 {
        if self.base.get() == 0 {
            let region = &raw mut BYTES as usize;
            self.base.set(region);
            self.top.set(region);
        }
        let start = (self.top.get() + layout.align() - 1) & !(layout.align() - 1);
        match start.checked_add(layout.size()) {
            Some(end) if end <= self.base.get() + REGION => {
                self.last.set(start);
                self.top.set(end);
                start as *mut u8
            }
            _ => std::ptr::null_mut(),
        }
    }
}

impl Default for Arena {
    fn default() -> Arena {
        Arena::new()
    }
}

unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = self.bump(layout);
        if p.is_null() {
            // SAFETY: forwarded as given.
            unsafe { System.alloc(layout) }
        } else {
            p
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.owns(ptr) {
            if ptr as usize == self.last.get() {
                self.top.set(ptr as usize);
                self.last.set(usize::MAX);
            }
        } else {
            // SAFETY: a block outside the region came from System.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !self.owns(ptr) {
            // SAFETY: a block outside the region came from System.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        let p = ptr as usize;
        if p == self.last.get() && p + new_size <= self.base.get() + REGION {
            self.top.set(p + new_size);
            return ptr;
        }
        if new_size <= layout.size() {
            return ptr;
        }
        // SAFETY: the caller guarantees a valid layout for new_size.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as alloc.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks hold at least layout.size() bytes and do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size()) };
            // SAFETY: the old block is ours and no longer used.
            unsafe { self.dealloc(ptr, layout) };
        }
        new
    }
}
