// The pages' few lines of plain JavaScript (no library).

// Forms that destroy something ask first (data-confirm).
document.addEventListener("submit", function (event) {
  const question = event.target.dataset && event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});

// The Orders page: while an order is still Placed, fetch the table again every second and
// swap it in when it changed, so Confirmed or Rejected shows without a reload. Keyboard
// focus stays on the same order's button; a short status line says what changed.
(function () {
  const holder = document.querySelector("[data-refresh]");
  if (!holder) return;
  const news = document.getElementById("orders-news");
  async function refresh() {
    const table = holder.querySelector("table");
    if (!table || table.dataset.pending !== "true") return;
    try {
      const answer = await fetch(holder.dataset.refresh, { credentials: "same-origin" });
      if (answer.redirected) {  // the session ended: to the sign-in page, whole
        window.location.assign(answer.url);
        return;
      }
      const html = answer.ok ? await answer.text() : null;
      if (html !== null && html.trim() !== holder.innerHTML.trim()) {
        const focused = document.activeElement && document.activeElement.closest("tr[data-order]");
        holder.innerHTML = html;
        if (focused) {
          const again = holder.querySelector(`tr[data-order="${focused.dataset.order}"] button`);
          if (again) again.focus();
        }
        if (news) news.textContent = "Orders updated";
      }
    } catch (error) {
      // The service is away for a moment: try again on the next tick.
    }
    setTimeout(refresh, 1000);
  }
  setTimeout(refresh, 1000);
})();
