//! A slab with generation-checked ids: O(1) insert, lookup and removal, and stale ids (say, a
//! timer for a socket that has since been closed) are detected instead of aliasing a new entry.

/// An entry's id: its slot and the slot's generation when it was inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id {
    slot: u32,
    generation: u32,
}

#[derive(Debug, Clone)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// The slab. Free slots are reused last-freed-first, which is deterministic.
#[derive(Debug, Clone)]
pub struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slab<T> {
    /// Stores a value and returns its id.
    pub fn insert(&mut self, value: T) -> Id {
        match self.free.pop() {
            Some(slot) => {
                let s = &mut self.slots[slot as usize];
                debug_assert!(s.value.is_none());
                s.generation = s.generation.wrapping_add(1);
                s.value = Some(value);
                Id {
                    slot,
                    generation: s.generation,
                }
            }
            None => {
                let slot = u32::try_from(self.slots.len()).expect("slab holds under 2^32 entries");
                self.slots.push(Slot {
                    generation: 0,
                    value: Some(value),
                });
                Id {
                    slot,
                    generation: 0,
                }
            }
        }
    }

    /// Every live entry, in slot order (deterministic).
    pub fn iter(&self) -> impl Iterator<Item = (Id, &T)> {
        self.slots.iter().enumerate().filter_map(|(slot, s)| {
            let id = Id {
                slot: u32::try_from(slot).expect("slab holds under 2^32 entries"),
                generation: s.generation,
            };
            s.value.as_ref().map(|v| (id, v))
        })
    }

    /// The value, if the id is still live.
    pub fn get(&self, id: Id) -> Option<&T> {
        let s = self.slots.get(id.slot as usize)?;
        if s.generation == id.generation {
            s.value.as_ref()
        } else {
            None
        }
    }

    /// The value, mutably, if the id is still live.
    pub fn get_mut(&mut self, id: Id) -> Option<&mut T> {
        let s = self.slots.get_mut(id.slot as usize)?;
        if s.generation == id.generation {
            s.value.as_mut()
        } else {
            None
        }
    }

    /// Removes and returns the value, if the id is still live.
    pub fn remove(&mut self, id: Id) -> Option<T> {
        let s = self.slots.get_mut(id.slot as usize)?;
        if s.generation != id.generation {
            return None;
        }
        let v = s.value.take();
        if v.is_some() {
            self.free.push(id.slot);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_ids_do_not_alias_reused_slots() {
        let mut s = Slab::default();
        let a = s.insert("a");
        assert_eq!(s.remove(a), Some("a"));
        let b = s.insert("b");
        assert_eq!(s.get(a), None);
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(s.remove(a), None);
    }
}
