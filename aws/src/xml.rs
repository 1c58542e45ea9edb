//! The XML of Query-protocol and S3 answers, read as paths and text.

use quick_xml::events::Event;

/// What [`read`] meets in a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    /// An element that holds text: its path (`/Response/.../Tag`) and the text, entities
    /// resolved and trimmed.
    Text(&'a str, &'a str),
    /// The end of an element: its path (a record's fields are complete).
    End(&'a str),
}

/// Calls `leaf` with the path and text of every element that holds text.
pub fn walk(xml: &str, leaf: &mut dyn FnMut(&str, &str)) -> Result<(), String> {
    read(xml, &mut |item| {
        if let Item::Text(path, text) = item {
            leaf(path, text);
        }
    })
}

/// Every element of a document that holds text: (path, text).
pub fn leaves(xml: &str) -> Result<Vec<(String, String)>, String> {
    let mut leaves = Vec::new();
    walk(xml, &mut |path, value| {
        leaves.push((path.to_string(), value.to_string()))
    })?;
    Ok(leaves)
}

/// Calls `on` with each element's text and end, in document order.
pub fn read(xml: &str, on: &mut dyn FnMut(Item<'_>)) -> Result<(), String> {
    let bad = |e: &dyn std::fmt::Display| format!("bad XML: {e}");
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut path = String::new();
    let mut text = String::new();
    loop {
        match reader.read_event().map_err(|e| bad(&e))? {
            Event::Start(element) => {
                path.push('/');
                path.push_str(&String::from_utf8_lossy(element.local_name().as_ref()));
                text.clear();
            }
            Event::Text(t) => text.push_str(&t.decode().map_err(|e| bad(&e))?),
            Event::CData(t) => text.push_str(&t.decode().map_err(|e| bad(&e))?),
            Event::GeneralRef(r) => {
                let entity = match r.resolve_char_ref().map_err(|e| bad(&e))? {
                    Some(c) => c,
                    None => match r.decode().map_err(|e| bad(&e))?.as_ref() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        other => return Err(bad(&format!("unknown entity &{other};"))),
                    },
                };
                text.push(entity);
            }
            Event::End(_) => {
                if !text.trim().is_empty() {
                    on(Item::Text(&path, text.trim()));
                }
                on(Item::End(&path));
                text.clear();
                let cut = path.rfind('/').unwrap_or(0);
                path.truncate(cut);
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_as_paths_and_text() {
        let xml = r#"<?xml version="1.0"?>
<DescribeTagsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <tagSet><item><resourceId>i-1</resourceId><key>Name</key><value>a &amp; b</value></item></tagSet>
  <nextToken>t2</nextToken>
</DescribeTagsResponse>"#;
        let mut seen = Vec::new();
        walk(xml, &mut |path, value| seen.push(format!("{path}={value}")))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            seen,
            [
                "/DescribeTagsResponse/tagSet/item/resourceId=i-1",
                "/DescribeTagsResponse/tagSet/item/key=Name",
                "/DescribeTagsResponse/tagSet/item/value=a & b",
                "/DescribeTagsResponse/nextToken=t2",
            ]
        );
        let mut ends = 0;
        read(xml, &mut |item| {
            if item == Item::End("/DescribeTagsResponse/tagSet/item") {
                ends += 1;
            }
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ends, 1);
        assert!(walk("<a><b>x</a>", &mut |_, _| {}).is_err());
    }
}
