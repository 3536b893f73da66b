//! An indentation-aware line writer for the text backends (C, WGSL).

#[derive(Default)]
pub struct Writer {
    out: String,
    level: usize,
}

impl Writer {
    pub fn line(&mut self, text: impl AsRef<str>) {
        let text = text.as_ref();
        if !text.is_empty() {
            for _ in 0..self.level {
                self.out.push_str("    ");
            }
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    pub fn blank(&mut self) {
        self.out.push('\n');
    }

    /// Writes `open`, the body one level deeper, then `close`.
    pub fn block(&mut self, open: impl AsRef<str>, close: &str, body: impl FnOnce(&mut Self)) {
        self.line(open);
        self.level += 1;
        body(self);
        self.level -= 1;
        self.line(close);
    }

    /// Appends text verbatim (a runtime source file).
    pub fn raw(&mut self, text: &str) {
        self.out.push_str(text);
        if !text.ends_with('\n') {
            self.out.push('\n');
        }
    }

    /// A block comment, one line per entry.
    pub fn comment(&mut self, lines: &[String]) {
        self.line("/*");
        for l in lines {
            self.line(format!(" * {}", l.replace("*/", "* /")));
        }
        self.line(" */");
    }

    pub fn finish(self) -> String {
        self.out
    }
}
