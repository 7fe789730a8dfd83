//! The depth a browser's tree builder reaches, to check the nesting model
//! against: html5ever's tree builder (the HTML Standard's algorithm, with
//! the current `<select>` rules) building a tree of element names only.

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::{Rc, Weak};

use html5ever::tendril::{StrTendril, TendrilSink};
use html5ever::tree_builder::{ElementFlags, NodeOrText, QuirksMode, TreeBuilderOpts, TreeSink};
use html5ever::{Attribute, ExpandedName, ParseOpts, QualName, parse_document};

/// How deep the deepest element of `html` is in the tree a browser builds,
/// `html` and `body` left out (as the model leaves them out). Quadratic in
/// the depth, as every tree builder: for inputs of moderate depth only.
pub(crate) fn standard_depth(html: &str, scripting: bool) -> usize {
    let opts = ParseOpts {
        tree_builder: TreeBuilderOpts {
            scripting_enabled: scripting,
            ..TreeBuilderOpts::default()
        },
        ..ParseOpts::default()
    };
    let tree = parse_document(Tree::default(), opts).one(html);
    tree.saturating_sub(2)
}

#[derive(Default)]
struct Node {
    name: Option<QualName>,
    annotation_xml_holds_html: bool,
    parent: RefCell<Weak<Node>>,
    children: RefCell<Vec<Rc<Node>>>,
}

type Handle = Rc<Node>;

#[derive(Default)]
struct Tree {
    document: Handle,
}

fn attach(parent: &Handle, child: Handle) {
    detach(&child);
    *child.parent.borrow_mut() = Rc::downgrade(parent);
    parent.children.borrow_mut().push(child);
}

fn detach(node: &Handle) {
    let parent = node.parent.borrow().upgrade();
    if let Some(parent) = parent {
        parent
            .children
            .borrow_mut()
            .retain(|c| !Rc::ptr_eq(c, node));
    }
    *node.parent.borrow_mut() = Weak::new();
}

impl TreeSink for Tree {
    type Handle = Handle;
    type Output = usize;
    type ElemName<'a> = ExpandedName<'a>;

    /// The depth of the deepest element (the document is 0, `html` 1).
    fn finish(self) -> usize {
        let mut deepest = 0;
        let mut pending = vec![(self.document.clone(), 0)];
        while let Some((node, depth)) = pending.pop() {
            if node.name.is_some() {
                deepest = usize::max(deepest, depth);
            }
            for child in node.children.borrow().iter() {
                pending.push((child.clone(), depth + 1));
            }
        }
        deepest
    }

    fn parse_error(&self, _: Cow<'static, str>) {}

    fn get_document(&self) -> Handle {
        self.document.clone()
    }

    fn elem_name<'a>(&'a self, target: &'a Handle) -> ExpandedName<'a> {
        target.name.as_ref().expect("an element").expanded()
    }

    fn create_element(&self, name: QualName, _: Vec<Attribute>, flags: ElementFlags) -> Handle {
        Rc::new(Node {
            name: Some(name),
            annotation_xml_holds_html: flags.mathml_annotation_xml_integration_point,
            ..Node::default()
        })
    }

    fn create_comment(&self, _: StrTendril) -> Handle {
        Rc::new(Node::default())
    }

    fn create_pi(&self, _: StrTendril, _: StrTendril) -> Handle {
        Rc::new(Node::default())
    }

    fn append(&self, parent: &Handle, child: NodeOrText<Handle>) {
        if let NodeOrText::AppendNode(child) = child {
            attach(parent, child);
        }
    }

    fn append_based_on_parent_node(
        &self,
        element: &Handle,
        prev_element: &Handle,
        child: NodeOrText<Handle>,
    ) {
        if element.parent.borrow().upgrade().is_some() {
            self.append_before_sibling(element, child);
        } else {
            self.append(prev_element, child);
        }
    }

    fn append_doctype_to_document(&self, _: StrTendril, _: StrTendril, _: StrTendril) {}

    /// A template's content counts as its children: the tree builder keeps
    /// it open like any other.
    fn get_template_contents(&self, target: &Handle) -> Handle {
        target.clone()
    }

    fn same_node(&self, x: &Handle, y: &Handle) -> bool {
        Rc::ptr_eq(x, y)
    }

    fn set_quirks_mode(&self, _: QuirksMode) {}

    fn append_before_sibling(&self, sibling: &Handle, new_node: NodeOrText<Handle>) {
        let parent = sibling.parent.borrow().upgrade();
        if let (NodeOrText::AppendNode(child), Some(parent)) = (new_node, parent) {
            attach(&parent, child);
        }
    }

    fn add_attrs_if_missing(&self, _: &Handle, _: Vec<Attribute>) {}

    fn remove_from_parent(&self, target: &Handle) {
        detach(target);
    }

    fn reparent_children(&self, node: &Handle, new_parent: &Handle) {
        let children = std::mem::take(&mut *node.children.borrow_mut());
        for child in children {
            *child.parent.borrow_mut() = Rc::downgrade(new_parent);
            new_parent.children.borrow_mut().push(child);
        }
    }

    fn is_mathml_annotation_xml_integration_point(&self, handle: &Handle) -> bool {
        handle.annotation_xml_holds_html
    }
}
