//! The page and its building blocks: sections, tables, inline pictures, escaped text.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// One part of the page, with the anchor it is found by.
#[derive(Debug, Clone)]
pub struct Section {
    pub id: String,
    pub title: String,
    /// HTML, already escaped where it holds user text.
    pub body: String,
}

impl Section {
    pub fn new(id: &str, title: &str, body: String) -> Self {
        Self {
            id: id.into(),
            title: title.into(),
            body,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Page {
    pub title: String,
    pub sections: Vec<Section>,
}

const STYLE: &str = "
body { font-family: 'DejaVu Sans', Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; border-bottom: 2px solid #0072b2; padding-bottom: .2em; }
h2 { font-size: 1.25em; margin-top: 1.8em; color: #0072b2; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f0f4f8; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font-family: 'DejaVu Sans Mono', monospace; font-size: .88em; }
pre { background: #f6f6f6; padding: .8em; overflow-x: auto; border: 1px solid #e2e2e2; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: .9em; color: #555; }
p.note { color: #555; font-size: .92em; }
";

impl Page {
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            sections: Vec::new(),
        }
    }

    pub fn push(&mut self, section: Section) {
        self.sections.push(section);
    }

    /// The whole page: head with the style sheet, a table of contents, then the sections.
    pub fn html(&self) -> String {
        let title = escape(&self.title);
        let nav: String = self
            .sections
            .iter()
            .map(|s| format!("<a href=\"#{}\">{}</a>", escape(&s.id), escape(&s.title)))
            .collect();
        let body: String = self
            .sections
            .iter()
            .map(|s| {
                format!(
                    "<section id=\"{}\">\n<h2>{}</h2>\n{}\n</section>\n",
                    escape(&s.id),
                    escape(&s.title),
                    s.body
                )
            })
            .collect();
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
             <h1>{title}</h1>\n<nav>{nav}</nav>\n{body}</body>\n</html>\n"
        )
    }
}

/// Text made safe to place in HTML, in element content and in quoted attributes.
pub fn escape(text: &str) -> String {
    html_escape::encode_safe(text).into_owned()
}

/// A table of plain-text cells; cells that read as numbers are right-aligned.
pub fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let th: String = head
        .iter()
        .map(|h| format!("<th>{}</th>", escape(h)))
        .collect();
    let body: String = rows
        .iter()
        .map(|row| {
            let cells: String = row
                .iter()
                .map(|c| {
                    let numeric = !c.is_empty()
                        && c.trim_start_matches(['-', '+'])
                            .chars()
                            .all(|ch| ch.is_ascii_digit() || ".,%e- ±".contains(ch));
                    if numeric {
                        format!("<td class=\"num\">{}</td>", escape(c))
                    } else {
                        format!("<td>{}</td>", escape(c))
                    }
                })
                .collect();
            format!("<tr>{cells}</tr>\n")
        })
        .collect();
    format!("<table>\n<thead><tr>{th}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>")
}

/// A PNG shown inline, with its file name as the caption.
pub fn png(bytes: &[u8], name: &str, caption: &str) -> String {
    format!(
        "<figure id=\"{id}\"><img src=\"data:image/png;base64,{data}\" alt=\"{alt}\">\
         <figcaption><code>{name}</code>: {caption}</figcaption></figure>",
        id = escape(&format!("figure-{name}")),
        data = STANDARD.encode(bytes),
        alt = escape(caption),
        name = escape(name),
        caption = escape(caption),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_cannot_make_markup() {
        let cell = "<script>alert('x')</script> & \"q\"";
        let html = table(&["name"], &[vec![cell.to_string()]]);
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;alert("));
        assert!(html.contains("&amp; &quot;q&quot;"));
        let mut page = Page::new("a <b> page");
        page.push(Section::new("s1", "one & two", "<p>body</p>".into()));
        let html = page.html();
        assert!(html.contains("<title>a &lt;b&gt; page</title>"));
        assert!(html.contains("<section id=\"s1\">\n<h2>one &amp; two</h2>\n<p>body</p>"));
        assert!(html.contains("<a href=\"#s1\">one &amp; two</a>"));
    }

    #[test]
    fn numbers_align_right_and_pictures_are_inline() {
        let html = table(&["a", "b"], &[vec!["0.731".into(), "forest".into()]]);
        assert!(html.contains("<td class=\"num\">0.731</td><td>forest</td>"));
        let figure = png(&[0x89, b'P', b'N', b'G'], "x.png", "a picture");
        assert!(figure.contains("src=\"data:image/png;base64,iVBORw==\""));
    }
}
