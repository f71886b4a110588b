//! Mutual exclusion per key (an environment id, an image digest): different keys proceed in
//! parallel, the same key runs one at a time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub(crate) struct KeyedLocks {
    map: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl KeyedLocks {
    /// Runs `f` while holding the lock of `key`.
    pub(crate) fn with<T>(&self, key: &str, f: impl FnOnce() -> T) -> T {
        let lock = {
            let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(key.to_string()).or_default().clone()
        };
        let result = {
            let _held = lock.lock().unwrap_or_else(|e| e.into_inner());
            f()
        };
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        // Only the map and this call hold it: nobody waits, forget the key.
        if Arc::strong_count(&lock) == 2 {
            map.remove(key);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn same_key_is_serialized_and_keys_are_forgotten() {
        let locks = Arc::new(KeyedLocks::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (locks, inside) = (locks.clone(), inside.clone());
                std::thread::spawn(move || {
                    locks.with("k", || {
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        inside.fetch_sub(1, Ordering::SeqCst);
                    })
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(locks.map.lock().unwrap().is_empty());
    }
}
