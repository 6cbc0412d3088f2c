#line 2 "window.cu"
