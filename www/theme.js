// The colour theme: the system's, or light or dark as chosen in this browser.

import { byId } from "./dom.js";

const THEME_KEY = "sora-edge:theme";
const THEMES = ["system", "light", "dark"];

export function initThemeToggle() {
  const els = { theme: byId("theme"), themeLabel: byId("theme-label"), themeIcon: byId("theme-icon") };
  const systemDark = matchMedia("(prefers-color-scheme: dark)");
  function applyTheme(theme) {
    const resolved = theme === "system" ? (systemDark.matches ? "dark" : "light") : theme;
    document.documentElement.dataset.theme = resolved;
    els.themeLabel.textContent = theme[0].toUpperCase() + theme.slice(1);
    els.themeIcon.textContent = theme === "light" ? "☀" : theme === "dark" ? "☾" : "◐";
    els.theme.setAttribute("aria-label", `Colour theme: ${theme}. Change`);
  }
  let theme = THEMES.includes(localStorage.getItem(THEME_KEY)) ? localStorage.getItem(THEME_KEY) : "system";
  applyTheme(theme);
  systemDark.addEventListener("change", () => theme === "system" && applyTheme(theme));
  els.theme.addEventListener("click", () => {
    theme = THEMES[(THEMES.indexOf(theme) + 1) % THEMES.length];
    localStorage.setItem(THEME_KEY, theme);
    applyTheme(theme);
  });
}
