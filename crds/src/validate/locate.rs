//! From a field path (`spec.strategy.steps[1].setWeight`) to its line in the YAML text.

use std::collections::HashMap;

use yaml_rust2::Event;
use yaml_rust2::parser::{MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use super::join;

/// Lines of every key and list item of a YAML document, by path.
#[derive(Debug, Default)]
pub struct Locator {
    lines: HashMap<String, usize>,
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, index: usize },
}

#[derive(Default)]
struct Collector {
    stack: Vec<Frame>,
    lines: HashMap<String, usize>,
}

impl Collector {
    /// Path of the value starting now (and records its line); `None` when it is a mapping key.
    fn value_path(&mut self, line: usize) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map { path, key }) => key.take().map(|k| join(path, &k)),
            Some(Frame::Seq { path, index }) => {
                let p = format!("{path}[{index}]");
                *index += 1;
                self.lines.entry(p.clone()).or_insert(line);
                Some(p)
            }
        }
    }
}

impl MarkedEventReceiver for Collector {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let line = mark.line();
        match ev {
            Event::Scalar(value, ..) => {
                if self.value_path(line).is_none()
                    && let Some(Frame::Map { path, key }) = self.stack.last_mut()
                {
                    self.lines.entry(join(path, &value)).or_insert(line);
                    *key = Some(value);
                }
            }
            Event::MappingStart(..) => {
                let path = self.value_path(line).unwrap_or_default();
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.value_path(line).unwrap_or_default();
                self.stack.push(Frame::Seq { path, index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::Alias(_) => {
                let _ = self.value_path(line);
            }
            _ => {}
        }
    }
}

impl Locator {
    /// Indexes `text`; a document that does not parse gives an empty index.
    pub fn new(text: &str) -> Self {
        let mut collector = Collector::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut collector, false).is_err() {
            return Self::default();
        }
        Self {
            lines: collector.lines,
        }
    }

    /// The line of `path`, or of its closest ancestor present in the file.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut p = path.trim_start_matches('.').to_owned();
        loop {
            if let Some(line) = self.lines.get(&p) {
                return Some(*line);
            }
            let cut = p.rfind(['.', '['])?;
            p.truncate(cut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_items_and_flow_style() {
        let text = "apiVersion: v1\nspec:\n  strategy:\n    steps:\n    - setWeight: 10\n    - pause: {duration: 5m}\n    - {setWeight: 5}\n  analysis:\n    checks: [{name: a, max: 1}]\n";
        let l = Locator::new(text);
        assert_eq!(l.line_of("apiVersion"), Some(1));
        assert_eq!(l.line_of("spec.strategy.steps[0].setWeight"), Some(5));
        assert_eq!(l.line_of("spec.strategy.steps[1].pause.duration"), Some(6));
        assert_eq!(l.line_of("spec.strategy.steps[2].setWeight"), Some(7));
        assert_eq!(l.line_of("spec.strategy.steps[2]"), Some(7));
        assert_eq!(l.line_of("spec.analysis.checks[0].max"), Some(9));
        assert_eq!(
            l.line_of("spec.analysis.checks[0].min"),
            Some(9),
            "falls back to the parent"
        );
        assert_eq!(l.line_of("spec.nothing.here"), Some(2));
    }
}
