//! Environment ids and the persistent allocation of host uid ranges ("slots").
//!
//! Slot `n` owns host uids and gids `uid_base + n * 65536 .. + 65536`. A slot is taken by
//! creating `DATA/slots/<n>` with `O_EXCL` (so two threads or processes can never take the
//! same one) holding the environment id, and freed by removing that file.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::PathBuf;

use crate::error::EngineError;

/// Uids (and gids) per environment: a full 16-bit range, so images' uids 0..65535 all map.
pub const RANGE: u32 = 65536;

/// Checks that `id` is `env_[a-z0-9]{1,40}`: it becomes a path, a runc container id, a
/// cgroup name and the default hostname.
pub fn validate_env_id(id: &str) -> Result<(), EngineError> {
    let rest = id.strip_prefix("env_").ok_or_else(|| EngineError::InvalidId(id.to_string()))?;
    if rest.is_empty() || rest.len() > 40 || !rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        return Err(EngineError::InvalidId(id.to_string()));
    }
    Ok(())
}

pub(crate) struct Slots {
    dir: PathBuf,
    uid_base: u32,
    max: u32,
}

impl Slots {
    pub(crate) fn new(dir: PathBuf, uid_base: u32) -> Slots {
        // Every id of the last range must stay below u32::MAX, the "no uid" value.
        let max = (u32::MAX - uid_base) / RANGE;
        Slots { dir, uid_base, max }
    }

    pub(crate) fn host_uid(&self, slot: u32) -> u32 {
        self.uid_base + slot * RANGE
    }

    /// Takes the lowest free slot for `env_id` (or returns the one it already holds).
    pub(crate) fn allocate(&self, env_id: &str) -> Result<u32, EngineError> {
        for slot in 0..self.max {
            let path = self.path(slot);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    file.write_all(env_id.as_bytes()).map_err(EngineError::io("write slot file", &path))?;
                    return Ok(slot);
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    // Left over from a create that died before its state file was written.
                    if fs::read_to_string(&path).is_ok_and(|owner| owner == env_id) {
                        return Ok(slot);
                    }
                }
                Err(e) => return Err(EngineError::io("create slot file", &path)(e)),
            }
        }
        Err(EngineError::NoFreeSlot(self.max))
    }

    pub(crate) fn free(&self, slot: u32) -> Result<(), EngineError> {
        let path = self.path(slot);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(EngineError::io("remove slot file", &path)(e)),
            _ => Ok(()),
        }
    }

    /// Every taken slot with the environment id that holds it.
    pub(crate) fn taken(&self) -> Result<Vec<(u32, String)>, EngineError> {
        let mut taken = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(EngineError::io("list slots in", &self.dir))? {
            let entry = entry.map_err(EngineError::io("list slots in", &self.dir))?;
            let Some(slot) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            let owner = fs::read_to_string(entry.path()).unwrap_or_default();
            taken.push((slot, owner));
        }
        Ok(taken)
    }

    fn path(&self, slot: u32) -> PathBuf {
        self.dir.join(slot.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(validate_env_id("env_abc123").is_ok());
        for bad in ["env_", "abc", "env_ABC", "env_a/b", "env_..", "env_a-b", &format!("env_{}", "a".repeat(41))] {
            assert!(validate_env_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn slots_are_exclusive_and_reused_after_free() {
        let dir = tempfile::tempdir().unwrap();
        let slots = Slots::new(dir.path().to_path_buf(), 1_000_000);
        assert_eq!(slots.allocate("env_a").unwrap(), 0);
        assert_eq!(slots.allocate("env_b").unwrap(), 1);
        assert_eq!(slots.allocate("env_a").unwrap(), 0, "an env keeps its slot");
        assert_eq!(slots.host_uid(1), 1_065_536);
        slots.free(0).unwrap();
        assert_eq!(slots.allocate("env_c").unwrap(), 0);
        assert_eq!(slots.taken().unwrap().len(), 2);
    }

    #[test]
    fn the_last_range_stays_below_u32_max() {
        let slots = Slots::new(PathBuf::from("/nonexistent"), u32::MAX - 3 * RANGE);
        assert_eq!(slots.max, 3);
        let last_id = slots.host_uid(slots.max - 1) as u64 + RANGE as u64 - 1;
        assert!(last_id < u32::MAX as u64);
    }
}
