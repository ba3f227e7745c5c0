// Grok Imagine: the frontend's own control styles for the pack's hand-made controls (Settings
// entries, the panel). Frontends with the design-token stylesheet (2026, 1.3x+) style their
// Button component with utility classes on tokens such as --primary-background; older ones
// (2025) use PrimeVue's classes. Feature-detected, not by version. No side effects on import.

const TOKEN_BUTTON =
  "relative inline-flex items-center justify-center gap-2 cursor-pointer whitespace-nowrap " +
  "appearance-none border-none font-medium font-inter transition-colors " +
  "focus-visible:outline-none focus-visible:ring-1 focus-visible:ring-ring " +
  "disabled:pointer-events-none disabled:opacity-50 h-8 rounded-lg p-2 text-xs";

export function controlClasses() {
  const tokens = getComputedStyle(document.documentElement).getPropertyValue("--primary-background");
  if (tokens.trim()) {
    return {
      input: "p-inputtext p-component p-inputtext-sm",
      primary: `${TOKEN_BUTTON} bg-primary-background text-base-foreground hover:bg-primary-background-hover`,
      secondary: `${TOKEN_BUTTON} text-secondary-foreground bg-secondary-background hover:bg-secondary-background-hover`,
      text: `${TOKEN_BUTTON} bg-transparent text-base-foreground hover:bg-secondary-background-hover`,
      status: "text-xs text-muted-foreground",
    };
  }
  return {
    input: "p-inputtext p-component p-inputtext-sm",
    primary: "p-button p-component p-button-sm",
    secondary: "p-button p-component p-button-sm p-button-secondary",
    text: "p-button p-component p-button-sm p-button-text",
    status: "",
  };
}
