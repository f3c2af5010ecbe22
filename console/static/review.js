// The review queue (detections or tracks): confirm / dismiss / mark as false alarm, with a reason,
// without leaving the page. Each row names the URL its verdict goes to.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  for (const row of document.querySelectorAll("tr[data-review-url]")) {
    for (const button of row.querySelectorAll("button[data-verdict]")) {
      button.addEventListener("click", async () => {
        const input = row.querySelector(".reason");
        const reason = input.value.trim();
        if (!reason) { input.focus(); input.placeholder = "a reason is required"; return; }
        const response = await fetch(row.dataset.reviewUrl, {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
          body: JSON.stringify({ verdict: button.dataset.verdict, reason }),
        });
        const cell = row.querySelector(".verdict");
        if (response.ok) {
          cell.replaceChildren(Object.assign(document.createElement("span"), { className: "badge", textContent: button.dataset.verdict }),
                               document.createTextNode(" " + reason));
        } else {
          cell.append(" error: " + response.status);
        }
      });
    }
  }
})();
