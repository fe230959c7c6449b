//! Lists a page at a time: `--limit` and `--after` on every list, the next page's cursor on
//! stderr when more follow (stdout stays the page itself).

use clap::Args;
use hoody_api::client::{ClientError, Page};
use hoody_api::query::PageQuery;
use serde::Serialize;

use super::output::{Output, emit};

#[derive(Debug, Clone, Default, Args)]
pub struct PageArgs {
    /// At most this many, oldest first (1 to 10,000); when more follow, the next page's
    /// `--after` is printed on stderr.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Begin after this cursor (what the page before printed).
    #[arg(long, value_name = "CURSOR")]
    pub after: Option<String>,
}

impl PageArgs {
    pub fn query(&self) -> PageQuery {
        PageQuery { limit: self.limit, after: self.after.clone() }
    }
}

/// Prints a page as [`emit`] prints a list, and where the next begins.
pub fn emit_page<T: Serialize>(out: Output, r: Result<Page<T>, ClientError>) -> anyhow::Result<i32> {
    match r {
        Ok(page) => {
            let code = emit(out, Ok(page.items))?;
            if let Some(next) = page.next {
                eprintln!("hoodyctl: more follow; the next page: --after {next}");
            }
            Ok(code)
        }
        Err(e) => emit::<Vec<()>>(out, Err(e)),
    }
}
