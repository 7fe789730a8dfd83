//! The list of active formatting elements. A formatting element (`b`, `font`,
//! `a`, …) closed by something else than its own end tag stays in the list,
//! and a browser reopens it inside whatever comes next: `<p><b id=1></p>`,
//! repeated with other attributes, nests one level deeper each time. The
//! elements closed that way are counted as open; the "Noah's Ark" rule keeps
//! at most three alike, so that sloppy HTML (`<p><b>` left open in every
//! paragraph) stays flat.

use html5ever::Attribute;
use html5ever::LocalName;
use html5ever::tokenizer::Tag;

/// More alike entries than this after the last marker push out the earliest.
const ALIKE_KEPT: usize = 3;

#[derive(Debug)]
enum Item {
    /// Consecutive markers (cells, captions, objects, templates), counted.
    Markers(usize),
    Element(Formatting),
}

#[derive(Debug)]
struct Formatting {
    id: u32,
    name: LocalName,
    /// Sorted, so that alike elements compare equal whatever their order.
    attrs: Vec<Attribute>,
    open: bool,
}

/// The list, as far as a tokenizer can follow it.
#[derive(Debug, Default)]
pub(super) struct ActiveFormatting {
    items: Vec<Item>,
    /// Elements in the list that are no longer open.
    closed: usize,
    next_id: u32,
}

/// A formatting element found in the list.
#[derive(Debug, Clone, Copy)]
pub(super) struct Found {
    pub id: u32,
    pub open: bool,
}

impl ActiveFormatting {
    /// Elements in the list that a browser would reopen.
    pub fn closed(&self) -> usize {
        self.closed
    }

    pub fn push_marker(&mut self) {
        match self.items.last_mut() {
            Some(Item::Markers(count)) => *count += 1,
            _ => self.items.push(Item::Markers(1)),
        }
    }

    /// Adds the element `tag` opens; returns its id.
    pub fn push(&mut self, tag: &Tag) -> u32 {
        let mut attrs = tag.attrs.clone();
        attrs.sort();
        let mut alike = 0;
        let mut earliest = None;
        for (at, element) in self.after_last_marker() {
            if element.name == tag.name && element.attrs == attrs {
                alike += 1;
                earliest = Some(at);
            }
        }
        if alike >= ALIKE_KEPT
            && let Some(at) = earliest
        {
            self.remove_at(at);
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.items.push(Item::Element(Formatting {
            id,
            name: tag.name.clone(),
            attrs,
            open: true,
        }));
        id
    }

    /// The element `id` was closed by something else than its end tag.
    pub fn close(&mut self, id: u32) {
        if let Some(at) = self.position(id)
            && let Item::Element(element) = &mut self.items[at]
            && element.open
        {
            element.open = false;
            self.closed += 1;
        }
    }

    pub fn contains(&self, id: u32) -> bool {
        self.position(id).is_some()
    }

    /// The last element named `name` after the last marker.
    pub fn last_named(&self, name: &str) -> Option<Found> {
        self.after_last_marker()
            .find(|(_, f)| &*f.name == name)
            .map(|(_, f)| Found {
                id: f.id,
                open: f.open,
            })
    }

    /// Reopens the elements closed since the last marker or open one
    /// ("reconstruct the active formatting elements"): their ids and names,
    /// outermost first.
    pub fn reopen(&mut self) -> Vec<(u32, LocalName)> {
        let mut from = self.items.len();
        while from > 0 && matches!(&self.items[from - 1], Item::Element(f) if !f.open) {
            from -= 1;
        }
        let mut reopened = Vec::new();
        for item in &mut self.items[from..] {
            if let Item::Element(element) = item {
                element.open = true;
                reopened.push((element.id, element.name.clone()));
            }
        }
        self.closed -= reopened.len();
        reopened
    }

    /// Moves the element `id` to just after the element `after` (the
    /// adoption agency's bookmark).
    pub fn move_after(&mut self, id: u32, after: u32) {
        let Some(from) = self.position(id) else {
            return;
        };
        let item = self.items.remove(from);
        let to = self.position(after).map_or(from, |at| at + 1);
        self.items.insert(to, item);
    }

    pub fn remove(&mut self, id: u32) {
        if let Some(at) = self.position(id) {
            self.remove_at(at);
        }
    }

    /// Leaving a cell, caption, object or template: its elements go.
    pub fn clear_to_last_marker(&mut self) {
        while let Some(item) = self.items.pop() {
            match item {
                Item::Element(element) => {
                    if !element.open {
                        self.closed -= 1;
                    }
                }
                Item::Markers(count) => {
                    if count > 1 {
                        self.items.push(Item::Markers(count - 1));
                    }
                    return;
                }
            }
        }
    }

    fn remove_at(&mut self, at: usize) {
        if let Item::Element(element) = self.items.remove(at)
            && !element.open
        {
            self.closed -= 1;
        }
    }

    fn position(&self, id: u32) -> Option<usize> {
        self.items
            .iter()
            .rposition(|item| matches!(item, Item::Element(f) if f.id == id))
    }

    /// The elements after the last marker, last first, with their index.
    fn after_last_marker(&self) -> impl Iterator<Item = (usize, &Formatting)> {
        self.items
            .iter()
            .enumerate()
            .rev()
            .map_while(|(at, item)| match item {
                Item::Element(element) => Some((at, element)),
                Item::Markers(_) => None,
            })
    }
}
