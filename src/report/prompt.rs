//! Questions to the person at the terminal. dialoguer blocks, so each question runs on
//! a blocking thread, off the async runtime's. Callers check [`super::interactive`]
//! first: what "no terminal" means (refuse, or not try) is theirs to decide.

/// The terminal could not be asked or read.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("the terminal could not be read: {0}")]
    Terminal(#[from] dialoguer::Error),
    #[error("the terminal could not be written: {0}")]
    Write(#[from] std::io::Error),
    #[error("the question was cut short: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A yes/no question that defaults to no; Esc counts as no. `Err` when the terminal
/// could not be read.
pub async fn confirm(question: String) -> Result<bool, PromptError> {
    let answer = tokio::task::spawn_blocking(move || {
        let term = console::Term::stderr();
        let (_, width) = term.size();
        let (before, prompt) = fit(question, width as usize);
        if let Some(line) = before {
            term.write_line(&line)?;
        }
        Ok::<_, PromptError>(
            dialoguer::Confirm::new()
                .with_prompt(prompt)
                .default(false)
                .interact_opt()?,
        )
    })
    .await??;
    Ok(answer == Some(true))
}

/// The question as dialoguer can redraw it: dialoguer clears and rewrites the prompt's
/// last line once answered, so a prompt wider than the terminal (wrapped over several
/// lines) would be left on screen twice. A question that does not fit with its `[y/N]`
/// is printed whole first, and the prompt is a short one.
fn fit(question: String, width: usize) -> (Option<String>, String) {
    const ANSWER: usize = " [y/N] no".len();
    if width == 0 || console::measure_text_width(&question) + ANSWER < width {
        return (None, question);
    }
    (Some(question), "Proceed?".to_string())
}

/// A line the person types (trimmed), for confirmations that must be typed out.
pub async fn typed(prompt: String) -> Result<String, PromptError> {
    let text = tokio::task::spawn_blocking(move || {
        dialoguer::Input::<String>::new()
            .with_prompt(prompt)
            .allow_empty(true)
            .interact_text()
    })
    .await??;
    Ok(text.trim().to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_question_wider_than_the_terminal_is_printed_before_a_short_prompt() {
        let question = "Deploy to database shop on db.internal (server 15.4): a1f0c2d3e4b5 → f6a0b1c2d3e4, 7 migrations?".to_string();
        assert_eq!(super::fit(question.clone(), 200), (None, question.clone()));
        let (before, prompt) = super::fit(question.clone(), 80);
        assert_eq!(before.as_deref(), Some(question.as_str()));
        assert_eq!(prompt, "Proceed?");
    }
}
