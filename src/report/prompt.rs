//! Questions to the person at the terminal. dialoguer blocks, so each question runs on
//! a blocking thread, off the async runtime's. Callers check [`super::interactive`]
//! first: what "no terminal" means (refuse, or not try) is theirs to decide.

/// A yes/no question that defaults to no; Esc counts as no. `Err` when the terminal
/// could not be read.
pub async fn confirm(question: String) -> Result<bool, String> {
    let answer = tokio::task::spawn_blocking(move || {
        dialoguer::Confirm::new()
            .with_prompt(question)
            .default(false)
            .interact_opt()
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    Ok(answer == Some(true))
}

/// A line the person types (trimmed), for confirmations that must be typed out.
pub async fn typed(prompt: String) -> Result<String, String> {
    let text = tokio::task::spawn_blocking(move || {
        dialoguer::Input::<String>::new()
            .with_prompt(prompt)
            .allow_empty(true)
            .interact_text()
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    Ok(text.trim().to_string())
}
