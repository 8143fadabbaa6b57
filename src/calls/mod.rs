//! The call centre's side of a campaign: the work list of the citizens a
//! campaign could not reach by SMS or e-mail, and the results of the calls
//! made to them, recorded against the calls activity of the programme.

mod export;
mod import;
mod outcome;
mod suppressions;

pub use export::{work_list, write_work_list, WorkItem, WorkList, WORK_LIST_COLUMNS};
pub use import::{import_results, CallsImport, CallsImportError};
pub use outcome::{classify_call, CallAttempt, CallOutcome};
pub use suppressions::suppressions_for;
