//! `[analyst]` and `[analyst.llm]` (the analyst: `pipeline/analyst`).

use serde::Deserialize;

/// `[analyst]`: storylines on `game/{id}/analyst` (PROTOCOL.md; `pipeline/analyst`). Time is
/// the events' source time, so a replay gives the same notes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalystConfig {
    /// Write notes at all. Default true.
    pub enabled: bool,
    /// Notes a game publishes in any minute (period ends and the final are not held to it).
    /// Default 3.
    pub max_per_minute: u32,
    /// Least time between two notes of a game. Default 12.
    pub min_gap_secs: u32,
    /// A note of the same kind about the same subject waits this long. Default 300.
    pub repeat_secs: u32,
    /// A note not published within this long of its event is dropped (old news). Default 60.
    pub max_age_secs: u32,
    /// Rephrasing by a language model (off unless set).
    pub llm: Option<LlmConfig>,
}

impl Default for AnalystConfig {
    fn default() -> Self {
        AnalystConfig {
            enabled: true,
            max_per_minute: 3,
            min_gap_secs: 12,
            repeat_secs: 300,
            max_age_secs: 60,
            llm: None,
        }
    }
}

/// `[analyst.llm]`: an OpenAI-compatible chat-completions endpoint that rephrases notes. It is
/// given the note's facts and template text only; an answer naming a number or a name not in
/// them, a timeout or a spent budget publishes the template text.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    /// Base URL, e.g. `https://api.openai.com/v1` (`/chat/completions` is appended).
    pub url: String,
    pub model: String,
    /// Environment variable holding the API key (sent as `Authorization: Bearer`). Default none.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Longest wait for an answer. Default 2000.
    #[serde(default = "LlmConfig::default_timeout_ms")]
    pub timeout_ms: u64,
    /// Requests per minute, across games; over it the template text goes out. Default 30.
    #[serde(default = "LlmConfig::default_per_minute")]
    pub max_requests_per_minute: u32,
    /// `max_tokens` asked for per answer. Default 80.
    #[serde(default = "LlmConfig::default_max_tokens")]
    pub max_tokens: u32,
    /// Let `url` be a private or loopback address (a model served inside the venue). Default
    /// true: the operator writes this URL, not the network.
    #[serde(default = "LlmConfig::default_allow_private")]
    pub allow_private: bool,
}

impl LlmConfig {
    fn default_timeout_ms() -> u64 {
        2000
    }
    fn default_per_minute() -> u32 {
        30
    }
    fn default_max_tokens() -> u32 {
        80
    }
    fn default_allow_private() -> bool {
        true
    }
}

impl AnalystConfig {
    /// The field at fault and why, for `Config::validate`.
    pub(super) fn check(&self) -> Result<(), (&'static str, &'static str)> {
        let Some(llm) = &self.llm else { return Ok(()) };
        let scheme = url::Url::parse(&llm.url).map(|u| u.scheme().to_string());
        if !matches!(scheme.as_deref(), Ok("http" | "https")) {
            return Err((
                "analyst.llm.url",
                "an http:// or https:// base URL, e.g. https://api.openai.com/v1",
            ));
        }
        if llm.model.is_empty() {
            return Err(("analyst.llm.model", "name the model the endpoint serves"));
        }
        if llm.timeout_ms == 0 || llm.max_requests_per_minute == 0 {
            return Err(("analyst.llm", "timeout_ms and max_requests_per_minute must be positive"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    #[test]
    fn a_language_model_endpoint_is_checked_at_start() {
        let bad = |text: &str| toml::from_str::<Config>(text).unwrap().validate().unwrap_err().to_string();
        assert!(bad("[analyst.llm]\nurl = \"ftp://x\"\nmodel = \"m\"\n").contains("analyst.llm.url"));
        assert!(
            bad("[analyst.llm]\nurl = \"http://127.0.0.1:1/v1\"\nmodel = \"\"\n")
                .contains("analyst.llm.model")
        );
        let ok: Config =
            toml::from_str("[analyst.llm]\nurl = \"http://127.0.0.1:1/v1\"\nmodel = \"m\"\n").unwrap();
        ok.validate().unwrap();
        assert_eq!(ok.analyst.llm.unwrap().timeout_ms, 2000);
    }
}
