// Grok Imagine: the frontend's own control styles for the pack's hand-made controls (Settings
// entries, the panel). Each frontend generation styles its buttons and fields differently:
//
// - 1.5x (2026-10 on): utility classes on the design system's tokens, bg-primary / bg-secondary /
//   text-foreground / hover:bg-accent; fields on bg-secondary;
// - 1.3x-1.4x (2026): the same kind of classes on older tokens, bg-primary-background /
//   bg-secondary-background / text-base-foreground; fields are PrimeVue's p-inputtext;
// - 1.2x (2025): PrimeVue's p-button / p-inputtext.
//
// A frontend only ships the utility classes it uses itself, so the generation is found by trying
// its background classes on a hidden probe (once per page), not by version. No side effects on import.

const BUTTON_BASE =
  "relative inline-flex items-center justify-center gap-2 cursor-pointer whitespace-nowrap " +
  "appearance-none border-none font-medium font-inter transition-colors " +
  "focus-visible:outline-none focus-visible:ring-1 focus-visible:ring-ring " +
  "disabled:pointer-events-none disabled:opacity-50 h-8 rounded-lg p-2 text-xs";

const GENERATIONS = [
  {
    probe: ["bg-primary", "bg-secondary"],
    classes: {
      input:
        "h-8 min-w-0 appearance-none rounded-lg border-none bg-secondary px-3 py-1 text-sm " +
        "text-foreground placeholder:text-muted-foreground focus-visible:ring-1 " +
        "focus-visible:ring-ring focus-visible:outline-none",
      primary: `${BUTTON_BASE} bg-primary text-foreground hover:bg-primary/90`,
      secondary: `${BUTTON_BASE} bg-secondary text-foreground hover:bg-accent`,
      text: `${BUTTON_BASE} bg-transparent text-foreground hover:bg-accent`,
      status: "text-xs text-muted-foreground",
    },
  },
  {
    probe: ["bg-primary-background", "bg-secondary-background"],
    classes: {
      input: "p-inputtext p-component p-inputtext-sm",
      primary: `${BUTTON_BASE} bg-primary-background text-base-foreground hover:bg-primary-background-hover`,
      secondary: `${BUTTON_BASE} text-secondary-foreground bg-secondary-background hover:bg-secondary-background-hover`,
      text: `${BUTTON_BASE} bg-transparent text-base-foreground hover:bg-secondary-background-hover`,
      status: "text-xs text-muted-foreground",
    },
  },
];

const PRIMEVUE = {
  input: "p-inputtext p-component p-inputtext-sm",
  primary: "p-button p-component p-button-sm",
  secondary: "p-button p-component p-button-sm p-button-secondary",
  text: "p-button p-component p-button-sm p-button-text",
  status: "",
};

let found = null;

function background(className) {
  const probe = document.createElement("button");
  probe.className = className;
  probe.style.cssText = "position:absolute;visibility:hidden;pointer-events:none;";
  document.body.append(probe);
  const color = getComputedStyle(probe).backgroundColor;
  probe.remove();
  return color;
}

function coloured(className, plain) {
  const color = background(className);
  return color !== plain && color !== "rgba(0, 0, 0, 0)" && color !== "transparent";
}

export function controlClasses() {
  if (!found) {
    const plain = background("");
    const generation = GENERATIONS.find((g) => g.probe.every((name) => coloured(name, plain)));
    found = generation ? generation.classes : PRIMEVUE;
  }
  return found;
}
