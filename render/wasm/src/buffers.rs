//! Buffers shared with the host: the host asks for one, writes into the
//! module's memory at its address, and passes the address back. Every buffer
//! is a `Vec` owned here and found again by its address, so an address the
//! host got wrong is an unknown buffer, never a read of foreign memory.

use std::cell::RefCell;
use std::collections::BTreeMap;

thread_local! {
    static BUFFERS: RefCell<BTreeMap<usize, Vec<u8>>> = const { RefCell::new(BTreeMap::new()) };
}

/// A new zeroed buffer of `len` bytes; returns its address.
pub fn alloc(len: usize) -> usize {
    // At least one byte of capacity: empty `Vec`s all share one dangling address.
    let mut buffer = Vec::with_capacity(len.max(1));
    buffer.resize(len, 0);
    keep(buffer)
}

/// Keeps `buffer` until [`take`] or [`free`]; returns its address.
pub fn keep(mut buffer: Vec<u8>) -> usize {
    if buffer.capacity() == 0 {
        buffer.reserve(1);
    }
    let address = buffer.as_ptr() as usize;
    BUFFERS.with_borrow_mut(|buffers| buffers.insert(address, buffer));
    address
}

/// The length of the buffer at `address` (0 for an unknown one).
pub fn len(address: usize) -> usize {
    BUFFERS.with_borrow(|buffers| buffers.get(&address).map_or(0, Vec::len))
}

/// Removes the buffer at `address` and hands it over.
pub fn take(address: usize) -> Option<Vec<u8>> {
    BUFFERS.with_borrow_mut(|buffers| buffers.remove(&address))
}

/// Drops the buffer at `address`, if there is one.
pub fn free(address: usize) {
    drop(take(address));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_found_by_address_until_taken() {
        let empty = alloc(0);
        let other_empty = alloc(0);
        assert_ne!(empty, other_empty, "each buffer has its own address");
        let five = alloc(5);
        assert_eq!(len(five), 5);
        assert_eq!(take(five), Some(vec![0; 5]));
        assert_eq!(len(five), 0);
        assert_eq!(take(five), None);
        free(empty);
        free(other_empty);
        assert_eq!(take(empty), None);
    }
}
