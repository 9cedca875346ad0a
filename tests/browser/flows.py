"""What a user does in the pages, step by step."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect


def sign_in(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/")
    expect(page).to_have_url(re.compile(r"/sign-in"))
    page.get_by_role("button", name="Sign in as developer").click()
    expect(page).to_have_url(re.compile(r"/products$"))


def stock_of(page: Page, base_url: str, product: str) -> str:
    page.goto(f"{base_url}/products")
    return page.locator(f'tr[data-product="{product}"] td.stock').inner_text()


def expect_stock(page: Page, base_url: str, product: str, stock: int) -> None:
    """Reload Products until the stock reads ``stock`` (the consumer applies it soon)."""
    for _ in range(60):
        if stock_of(page, base_url, product) == str(stock):
            return
        page.wait_for_timeout(250)
    assert stock_of(page, base_url, product) == str(stock)


def tutorial(page: Page, base_url: str, *, screenshots: bool = False) -> None:
    """The tutorial's end: Product A at 53; an order Confirmed on the Orders page without a
    reload; 52; cancelled; 53 again."""
    from tests.browser.conftest import screenshot

    sign_in(page, base_url)
    expect_stock(page, base_url, "Product A", 53)
    if screenshots:
        screenshot(page, "products")
    page.goto(f"{base_url}/orders")
    page.get_by_label("Customer").fill("Ann")
    options = page.get_by_label("Product").locator("option")
    value = next(
        options.nth(i).get_attribute("value")
        for i in range(options.count())
        if options.nth(i).inner_text().startswith("Product A (")
    )
    page.get_by_label("Product").select_option(value=value)
    page.get_by_role("button", name="Place order").click()
    expect(page.get_by_role("status")).to_have_text("order placed")
    row = page.locator("#orders tbody tr").first
    expect(row.locator("td.state")).to_have_text("Confirmed")  # swapped in, no reload
    expect(row).to_contain_text("Product A")
    if screenshots:
        screenshot(page, "orders")
    expect_stock(page, base_url, "Product A", 52)
    page.goto(f"{base_url}/orders")
    page.locator("#orders tbody tr").first.get_by_role("button", name=re.compile("Cancel")).click()
    expect(page.get_by_role("status")).to_have_text("order cancelled")
    expect(page.locator("#orders tbody tr").first.locator("td.state")).to_have_text("Cancelled")
    expect_stock(page, base_url, "Product A", 53)
