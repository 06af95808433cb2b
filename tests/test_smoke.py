def test_child_page_renders(web_a, enrolled_child_a):
    r = web_a.get(f"/children/{enrolled_child_a.pk}/")
    assert r.status_code == 200
    assert b"Child A" in r.content
