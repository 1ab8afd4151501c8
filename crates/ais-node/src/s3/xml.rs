//! S3's XML: a small writer for response documents (escaped text, S3's
//! namespace) and a tolerant reader for the two request bodies S3 clients
//! send (DeleteObjects, CompleteMultipartUpload): elements are found by
//! name, text is unescaped, anything else is ignored.

use super::error::{S3Error, S3Result};

pub const NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// An XML document built in order.
pub struct Xml(String);

impl Xml {
    pub fn doc() -> Self {
        Xml(String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"))
    }
    /// The root element, with S3's namespace.
    pub fn root(&mut self, name: &str) -> &mut Self {
        self.0.push('<');
        self.0.push_str(name);
        self.0.push_str(" xmlns=\"");
        self.0.push_str(NS);
        self.0.push_str("\">");
        self
    }
    pub fn open(&mut self, name: &str) -> &mut Self {
        self.0.push('<');
        self.0.push_str(name);
        self.0.push('>');
        self
    }
    pub fn close(&mut self, name: &str) -> &mut Self {
        self.0.push_str("</");
        self.0.push_str(name);
        self.0.push('>');
        self
    }
    pub fn leaf(&mut self, name: &str, text: &str) -> &mut Self {
        self.open(name);
        escape_into(&mut self.0, text);
        self.close(name)
    }
    /// `leaf` only when `text` is not empty.
    pub fn opt(&mut self, name: &str, text: &str) -> &mut Self {
        if !text.is_empty() {
            self.leaf(name, text);
        }
        self
    }
    pub fn finish(self) -> Vec<u8> {
        self.0.into_bytes()
    }
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry literally.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {
                out.push_str(&format!("&#x{:x};", c as u32))
            }
            c => out.push(c),
        }
    }
}

fn unescape(s: &str) -> S3Result<String> {
    if !s.contains('&') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after
            .find(';')
            .ok_or_else(|| S3Error::malformed_xml("unterminated entity"))?;
        let ent = &after[..end];
        let c = match ent {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            e if e.starts_with("#x") || e.starts_with("#X") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| S3Error::malformed_xml(format!("bad entity &{e};")))?,
            e if e.starts_with('#') => e[1..]
                .parse::<u32>()
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| S3Error::malformed_xml(format!("bad entity &{e};")))?,
            e => return Err(S3Error::malformed_xml(format!("unknown entity &{e};"))),
        };
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The inner text of every `<name>` element (in order), any namespace
/// prefix and attributes allowed; CDATA is not used by S3 clients.
pub fn elements<'a>(doc: &'a str, name: &str) -> S3Result<Vec<&'a str>> {
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        let end = rest
            .find('>')
            .ok_or_else(|| S3Error::malformed_xml("unterminated tag"))?;
        let tag = &rest[..end];
        if tag.starts_with('/') || tag.starts_with('?') || tag.starts_with('!') {
            rest = &rest[end + 1..];
            continue;
        }
        let tname = tag.split_whitespace().next().unwrap_or("");
        let local = tname.rsplit(':').next().unwrap_or(tname);
        let self_closing = tag.ends_with('/');
        rest = &rest[end + 1..];
        if local.trim_end_matches('/') != name {
            continue;
        }
        if self_closing {
            out.push("");
            continue;
        }
        let close = format!("</{tname}>");
        let j = rest
            .find(&close)
            .ok_or_else(|| S3Error::malformed_xml(format!("<{name}> is not closed")))?;
        out.push(&rest[..j]);
        rest = &rest[j + close.len()..];
    }
    Ok(out)
}

/// The unescaped text of the first `<name>` inside `doc`, if any.
pub fn text(doc: &str, name: &str) -> S3Result<Option<String>> {
    match elements(doc, name)?.first() {
        Some(t) => Ok(Some(unescape(t.trim())?)),
        None => Ok(None),
    }
}

/// `<Delete><Object><Key>..</Key></Object>...<Quiet>true</Quiet></Delete>`.
pub fn parse_delete(doc: &str) -> S3Result<(Vec<String>, bool)> {
    let quiet = text(doc, "Quiet")?.is_some_and(|q| q.eq_ignore_ascii_case("true"));
    let mut keys = Vec::new();
    for obj in elements(doc, "Object")? {
        let key = elements(obj, "Key")?
            .first()
            .map(|k| unescape(k))
            .transpose()?
            .ok_or_else(|| S3Error::malformed_xml("an <Object> has no <Key>"))?;
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(S3Error::malformed_xml("no <Object> to delete"));
    }
    if keys.len() > 1000 {
        return Err(S3Error::malformed_xml(
            "at most 1000 objects may be deleted per request",
        ));
    }
    Ok((keys, quiet))
}

/// `<CompleteMultipartUpload><Part><PartNumber>N</PartNumber><ETag>E</ETag></Part>...`.
pub fn parse_complete(doc: &str) -> S3Result<Vec<(u32, String)>> {
    let mut parts = Vec::new();
    for p in elements(doc, "Part")? {
        let n = text(p, "PartNumber")?
            .and_then(|n| n.parse::<u32>().ok())
            .ok_or_else(|| S3Error::malformed_xml("a <Part> has no valid <PartNumber>"))?;
        let etag =
            text(p, "ETag")?.ok_or_else(|| S3Error::malformed_xml("a <Part> has no <ETag>"))?;
        parts.push((n, etag.trim_matches('"').to_string()));
    }
    if parts.is_empty() {
        return Err(S3Error::malformed_xml(
            "CompleteMultipartUpload lists no parts",
        ));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_escaped_and_reads_back() {
        let mut x = Xml::doc();
        x.root("R").leaf("Key", "a<&>'\"b\u{1}").close("R");
        let s = String::from_utf8(x.finish()).unwrap();
        assert!(
            s.contains("<Key>a&lt;&amp;&gt;&apos;&quot;b&#x1;</Key>"),
            "{s}"
        );
        assert_eq!(text(&s, "Key").unwrap().unwrap(), "a<&>'\"b\u{1}");
    }

    #[test]
    fn parses_client_bodies() {
        let d = r#"<?xml version="1.0"?><Delete xmlns="x"><Object><Key>a&amp;b</Key></Object>
            <Object><Key>c</Key><VersionId>1</VersionId></Object><Quiet>true</Quiet></Delete>"#;
        assert_eq!(
            parse_delete(d).unwrap(),
            (vec!["a&b".to_string(), "c".to_string()], true)
        );
        let c = r#"<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
            <Part><ETag>"e1"</ETag><PartNumber>1</PartNumber></Part>
            <Part><PartNumber>2</PartNumber><ETag>&quot;e2&quot;</ETag></Part></CompleteMultipartUpload>"#;
        assert_eq!(
            parse_complete(c).unwrap(),
            vec![(1, "e1".to_string()), (2, "e2".to_string())]
        );
        assert!(parse_complete("<CompleteMultipartUpload/>").is_err());
        assert!(parse_delete("<Delete><Object><Key>x</Delete>").is_err());
    }
}
