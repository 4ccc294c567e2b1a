//! A small XML tree, enough to read the Query-protocol answers of moto (ELBv2, EC2).

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::error::Error;

/// One element: its local name (namespace prefix dropped), children and trimmed text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    /// Parses a document and returns its root element.
    ///
    /// # Errors
    /// [`Error::Xml`] when the document is not well-formed or has no root element.
    pub fn parse(xml: &str) -> Result<Element, Error> {
        let bad = |e: &dyn std::fmt::Display| Error::Xml(e.to_string());
        let mut reader = Reader::from_str(xml);
        let mut stack: Vec<Element> = vec![Element::default()];
        loop {
            match reader.read_event().map_err(|e| bad(&e))? {
                Event::Start(start) => stack.push(Element {
                    name: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
                    ..Element::default()
                }),
                Event::Empty(empty) => {
                    let element = Element {
                        name: String::from_utf8_lossy(empty.local_name().as_ref()).into_owned(),
                        ..Element::default()
                    };
                    top(&mut stack)?.children.push(element);
                }
                Event::Text(text) => {
                    let text = text.decode().map_err(|e| bad(&e))?;
                    top(&mut stack)?.text.push_str(&text);
                }
                Event::CData(cdata) => {
                    let text = cdata.decode().map_err(|e| bad(&e))?;
                    top(&mut stack)?.text.push_str(&text);
                }
                Event::GeneralRef(reference) => {
                    let resolved = if reference.is_char_ref() {
                        reference
                            .resolve_char_ref()
                            .map_err(|e| bad(&e))?
                            .map(String::from)
                    } else {
                        let name = reference.decode().map_err(|e| bad(&e))?;
                        quick_xml::escape::resolve_predefined_entity(&name).map(str::to_owned)
                    };
                    let resolved = resolved.ok_or_else(|| Error::Xml("unknown entity".into()))?;
                    top(&mut stack)?.text.push_str(&resolved);
                }
                Event::End(_) => {
                    let mut done = stack
                        .pop()
                        .ok_or_else(|| Error::Xml("unbalanced end tag".into()))?;
                    done.text = done.text.trim().to_owned();
                    top(&mut stack)?.children.push(done);
                }
                Event::Eof => break,
                _ => {}
            }
        }
        if stack.len() != 1 {
            return Err(Error::Xml("document ends inside an element".into()));
        }
        stack
            .pop()
            .and_then(|document| document.children.into_iter().next())
            .ok_or_else(|| Error::Xml("document has no root element".into()))
    }

    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child named `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Follows a path of child names from this element.
    pub fn path(&self, names: &[&str]) -> Option<&Element> {
        names
            .iter()
            .try_fold(self, |element, name| element.child(name))
    }

    /// The text of the first child named `name`.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }
}

fn top(stack: &mut [Element]) -> Result<&mut Element, Error> {
    stack
        .last_mut()
        .ok_or_else(|| Error::Xml("unbalanced end tag".into()))
}

/// Escapes text for an XML element body.
pub fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nested_text_and_entities_under_a_namespace() {
        let root = Element::parse(
            r#"<?xml version="1.0"?><R xmlns="urn:x"><A><B>one &amp; two</B><C/></A></R>"#,
        )
        .expect("well-formed");
        assert_eq!(root.name, "R");
        assert_eq!(
            root.path(&["A", "B"]).map(|e| e.text.as_str()),
            Some("one & two")
        );
        assert!(root.path(&["A", "C"]).is_some());
        assert!(root.path(&["A", "D"]).is_none());
    }

    #[test]
    fn rejects_a_document_cut_short() {
        assert!(Element::parse("<R><A>").is_err());
    }
}
