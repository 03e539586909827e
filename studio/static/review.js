// Keyboard shortcuts of a review page (studio/templates/review.html). The buttons are plain forms that work
// without this script; it only moves the current finding and presses a finding's buttons for its keys:
//   j, n, ArrowDown: next finding      k, p, ArrowUp: previous finding
//   1 keep   2 remove   3 relabel as suggested   4 relabel as chosen in the finding's list   0 undecided again
"use strict";

(function () {
  const findings = Array.from(document.querySelectorAll("section.finding[data-finding]"));
  if (findings.length === 0) return;
  const NEXT = new Set(["j", "n", "ArrowDown"]);
  const PREVIOUS = new Set(["k", "p", "ArrowUp"]);
  const ACTIONS = new Set(["0", "1", "2", "3", "4"]);
  let current = 0;

  function select(index, scroll) {
    current = Math.max(0, Math.min(findings.length - 1, index));
    findings.forEach((element, i) => element.classList.toggle("current", i === current));
    if (scroll) {
      findings[current].scrollIntoView({block: "center"});
      findings[current].focus({preventScroll: true});
    }
  }

  function fromHash() {
    let id = "";
    try { id = decodeURIComponent(window.location.hash.slice(1)); } catch (error) { return 0; }  // a malformed link
    const index = findings.findIndex(element => element.id === id);
    return index < 0 ? 0 : index;
  }

  function typing(target) {
    const name = target && target.tagName ? target.tagName.toLowerCase() : "";
    return name === "input" || name === "select" || name === "textarea" || (target && target.isContentEditable);
  }

  document.addEventListener("keydown", event => {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    if (NEXT.has(event.key)) {
      select(current + 1, true);
    } else if (PREVIOUS.has(event.key)) {
      select(current - 1, true);
    } else if (ACTIONS.has(event.key)) {
      const button = findings[current].querySelector(`button[data-key="${event.key}"]`);
      if (!button) return;
      button.click();  // submits the button's form: the same request as a click
    } else {
      return;
    }
    event.preventDefault();
  });

  findings.forEach((element, index) => element.addEventListener("click", () => select(index, false)));
  window.addEventListener("hashchange", () => select(fromHash(), true));
  select(fromHash(), window.location.hash !== "");
})();
