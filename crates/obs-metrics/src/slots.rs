//! A vector indexed by series id that grows in fixed-size segments.
//!
//! The head keeps one slot per series id. A plain `Vec` doubles its capacity as it grows: at
//! 100k series it holds room for 131k, and while it grows it holds the old and the new buffer
//! at once (1.5× the state of every series for a moment). Segments of [`SEGMENT_SLOTS`] never
//! move once allocated, and over-allocate by at most one segment.

/// Slots per segment.
const SEGMENT_SLOTS: usize = 4096;

/// Optional values indexed by `usize`, grown in segments.
#[derive(Debug)]
pub(crate) struct Slots<T> {
    segments: Vec<Box<[Option<T>]>>,
    /// One past the highest index ever set.
    len: usize,
}

impl<T> Default for Slots<T> {
    fn default() -> Slots<T> {
        Slots {
            segments: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slots<T> {
    /// One past the highest index ever set.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The slot at `index`, when below [`Slots::len`].
    pub(crate) fn get(&self, index: usize) -> Option<&Option<T>> {
        if index >= self.len {
            return None;
        }
        self.segments
            .get(index / SEGMENT_SLOTS)
            .and_then(|segment| segment.get(index % SEGMENT_SLOTS))
    }

    /// The slot at `index`, when below [`Slots::len`].
    pub(crate) fn get_mut(&mut self, index: usize) -> Option<&mut Option<T>> {
        if index >= self.len {
            return None;
        }
        self.segments
            .get_mut(index / SEGMENT_SLOTS)
            .and_then(|segment| segment.get_mut(index % SEGMENT_SLOTS))
    }

    /// Sets the slot at `index`, growing as needed.
    pub(crate) fn set(&mut self, index: usize, value: T) {
        let segment = index / SEGMENT_SLOTS;
        while self.segments.len() <= segment {
            self.segments
                .push(std::iter::repeat_with(|| None).take(SEGMENT_SLOTS).collect());
        }
        if let Some(slot) = self.segments[segment].get_mut(index % SEGMENT_SLOTS) {
            *slot = Some(value);
        }
        self.len = self.len.max(index + 1);
    }

    /// Every slot below [`Slots::len`], in index order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Option<T>> {
        self.segments
            .iter()
            .flat_map(|segment| segment.iter())
            .take(self.len)
    }

    /// Every slot below [`Slots::len`], in index order.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Option<T>> {
        let len = self.len;
        self.segments
            .iter_mut()
            .flat_map(|segment| segment.iter_mut())
            .take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_behave_like_a_vector_of_options() {
        let mut slots: Slots<u32> = Slots::default();
        let mut reference: Vec<Option<u32>> = Vec::new();
        for index in [0usize, 5, 4095, 4096, 9000, 3, 12_287, 12_288] {
            slots.set(index, index as u32);
            if reference.len() <= index {
                reference.resize(index + 1, None);
            }
            reference[index] = Some(index as u32);
            assert_eq!(slots.len(), reference.len());
        }
        assert!(slots.iter().eq(reference.iter()));
        for (index, expected) in reference.iter().enumerate() {
            assert_eq!(slots.get(index), Some(expected));
        }
        assert_eq!(slots.get(reference.len()), None);
        if let Some(slot) = slots.get_mut(9000) {
            *slot = None;
        }
        reference[9000] = None;
        for slot in slots.iter_mut().flatten() {
            *slot += 1;
        }
        for value in reference.iter_mut().flatten() {
            *value += 1;
        }
        assert!(slots.iter().eq(reference.iter()));
    }
}
